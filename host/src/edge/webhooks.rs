//! The webhook listener: the URLs 8x8 posts to, and the health check.

use std::sync::Arc;

use bytes::Bytes;
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
                    match presented {
                        Some(p) if super::admin::constant_time_eq(p, expected.as_bytes()) => {}
                        Some(_) => {
                            return http::error(
                                StatusCode::UNAUTHORIZED,
                                "unauthorized",
                                "wrong Authorization header",
                            );
                        }
                        None => {
                            return http::error(
                                StatusCode::UNAUTHORIZED,
                                "unauthorized",
                                "missing Authorization header",
                            );
                        }
                    }
                }
                let body = match http::read_body(request, self.body_limit).await {
                    // The body is a slice of the connection's read buffer,
                    // and its trace record keeps it until the trace writer
                    // runs: an exact copy lets hyper reuse that buffer
                    // instead of allocating a new one for every request.
                    Ok(body) => Bytes::copy_from_slice(&body),
                    Err(response) => return response,
                };
                match self.service.handle_webhook(body).await {
                    Answer::Callflow(json) => http::json(StatusCode::OK, json),
                    Answer::Acknowledged => http::json(StatusCode::OK, "{}"),
                    Answer::BadRequest(err) => {
                        http::error(StatusCode::BAD_REQUEST, "invalid webhook", err)
                    }
                    Answer::StorageFailed(err) => {
                        tracing::error!("could not store a session summary: {err}");
                        http::error(StatusCode::INTERNAL_SERVER_ERROR, "storage failed", err)
                    }
                }
            }
            "/healthz" => health(&request),
            _ => http::not_found(&path),
        }
    }
}

/// `GET /healthz`: `200` once the listener accepts connections.
pub fn health(request: &Request<Incoming>) -> HttpResponse {
    match *request.method() {
        Method::GET | Method::HEAD => http::json(StatusCode::OK, r#"{"status":"ok"}"#),
        ref other => http::method_not_allowed(other, "/healthz", "GET, HEAD"),
    }
}
