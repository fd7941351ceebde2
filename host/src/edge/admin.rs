//! The admin listener: operator endpoints behind a bearer token.

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use subtle::ConstantTimeEq;

use super::http::{self, HttpResponse};
use super::webhooks::health;

/// What the admin listener needs.
pub struct AdminEdge {
    /// The bearer token required on every request but `/healthz`; `None` on
    /// a loopback listener started without one.
    pub token: Option<String>,
}

impl AdminEdge {
    /// Answer one request.
    pub async fn handle(&self, request: Request<Incoming>) -> HttpResponse {
        let path = request.uri().path().to_owned();
        if path == "/healthz" {
            return health(&request);
        }
        if let Some(refusal) = self.refuse_unauthorized(&request) {
            return refusal;
        }
        http::not_found(&path)
    }

    /// The `401` answer for a request without the right token, if any.
    fn refuse_unauthorized(&self, request: &Request<Incoming>) -> Option<HttpResponse> {
        let token = self.token.as_ref()?;
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => None,
            Some(_) => Some(http::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong bearer token",
            )),
            None => Some(http::error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing Authorization: Bearer <IVR_ADMIN_TOKEN> header",
            )),
        }
    }
}

/// Compare two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}
