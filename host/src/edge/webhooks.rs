//! The webhook listener: the URLs 8x8 posts to, and the health check.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use super::http::{self, HttpResponse};
use crate::service::{Answer, IvrService};

/// What the webhook listener needs.
pub struct WebhookEdge {
    /// The service answering events.
    pub service: Arc<IvrService>,
    /// Largest accepted body, in bytes.
    pub body_limit: usize,
    /// The `Authorization` value 8x8 must send (the webhook's `httpAuthHeader`); `None`: open.
    pub auth_header: Option<String>,
    /// Time allowed to receive a body.
    pub read_timeout: Duration,
}

impl WebhookEdge {
    /// Answer one request.
    pub async fn handle(&self, request: Request<Incoming>) -> HttpResponse {
        let path = request.uri().path().to_owned();
        match path.as_str() {
            "/webhooks" | "/webhooks/vca" | "/webhooks/vss" => {
                if request.method() != Method::POST {
                    return http::method_not_allowed(request.method(), &path, "POST");
                }
                if let Some(expected) = &self.auth_header {
                    let presented = request
                        .headers()
                        .get(hyper::header::AUTHORIZATION)
                        .map(|v| v.as_bytes());
                    let refusal = match presented {
                        Some(p) if http::constant_time_eq(p, expected.as_bytes()) => None,
                        Some(_) => Some("wrong Authorization header"),
                        None => Some("missing Authorization header"),
                    };
                    if let Some(reason) = refusal {
                        let answer = http::error(StatusCode::UNAUTHORIZED, "unauthorized", reason);
                        return http::refuse(request, answer).await;
                    }
                }
                // The body is read into a buffer of its own (not a slice of
                // the connection's read buffer, which its trace record would
                // keep alive until the trace writer runs).
                let body = match http::read_body(request, self.body_limit, self.read_timeout).await
                {
                    Ok(body) => body,
                    Err(response) => return response,
                };
                match self.service.handle_webhook(body).await {
                    Answer::Callflow(json) => http::json(StatusCode::OK, json),
                    Answer::Acknowledged => http::json(StatusCode::OK, "{}"),
                    Answer::BadRequest(err) => {
                        http::error(StatusCode::BAD_REQUEST, "invalid webhook", err)
                    }
                    Answer::StorageFailed(err) => {
                        // The storage's own words stay in the log: they are
                        // the host's internals, not 8x8's business.
                        tracing::error!("could not store a session summary: {err}");
                        http::error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "storage failed",
                            "the summary could not be stored; deliver it again",
                        )
                    }
                }
            }
            "/healthz" => health(&request),
            _ if is_admin_path(&path) => http::error(
                hyper::StatusCode::NOT_FOUND,
                "not found",
                format!(
                    "no such path on the webhook listener: {path}; the admin API is served by the admin listener (--admin-listen, default 127.0.0.1:8081)"
                ),
            ),
            _ => http::not_found(&path),
        }
    }
}

/// A path of the admin API, asked of the webhook listener by mistake.
fn is_admin_path(path: &str) -> bool {
    ["/apps", "/routes", "/sessions", "/stats", "/metrics"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// `GET /healthz`: `200` once the listener accepts connections.
pub fn health(request: &Request<Incoming>) -> HttpResponse {
    match *request.method() {
        Method::GET | Method::HEAD => http::json(StatusCode::OK, r#"{"status":"ok"}"#),
        ref other => http::method_not_allowed(other, "/healthz", "GET, HEAD"),
    }
}
