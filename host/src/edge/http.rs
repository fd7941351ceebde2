//! HTTP plumbing shared by the listeners: JSON answers, JSON errors, body
//! limits.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// Every answer the host gives.
pub type HttpResponse = Response<Full<Bytes>>;

/// `status` with a JSON body.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error answer: `{"error": error, "detail": detail}`.
pub fn error(status: StatusCode, error: &str, detail: impl std::fmt::Display) -> HttpResponse {
    let body = serde_json::json!({ "error": error, "detail": detail.to_string() });
    json(status, body.to_string())
}

/// `405` naming the methods `path` accepts.
pub fn method_not_allowed(method: &Method, path: &str, allowed: &'static str) -> HttpResponse {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        format!("{method} is not allowed on {path}; use {allowed}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// `404` for an unknown path.
pub fn not_found(path: &str) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "not found",
        format!("no such path: {path}"),
    )
}

/// Read the whole body, refusing (`413`) anything over `limit` bytes
/// without reading past it.
pub async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, HttpResponse> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large",
            format!("the body is over the {limit} byte limit"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(error(
            StatusCode::BAD_REQUEST,
            "could not read the body",
            err,
        )),
    }
}
