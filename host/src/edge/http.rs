//! HTTP plumbing shared by the listeners: JSON answers, JSON errors, body
//! limits.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// Every answer the host gives.
pub type HttpResponse = Response<Full<Bytes>>;

/// Compare two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

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

/// Most bytes of an unwanted body read and thrown away before an early
/// answer (`401`, `413`), so that a client that sends its whole body before
/// reading (no `Expect: 100-continue`) gets the status instead of a reset.
const LINGER_BYTES: usize = 8 << 20;
/// Most time spent throwing an unwanted body away.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Mark `response` as the connection's last: hyper closes it once sent.
pub fn closing(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Answer early without the body: read and discard what the client is
/// still sending (up to [`LINGER_BYTES`], for at most [`LINGER_TIME`]),
/// then send `response` and close the connection.
pub async fn refuse(request: Request<Incoming>, response: HttpResponse) -> HttpResponse {
    let mut body = request.into_body();
    let _ = tokio::time::timeout(LINGER_TIME, discard(&mut body, LINGER_BYTES)).await;
    closing(response)
}

/// Read and drop up to `bound` bytes of `body`.
async fn discard(body: &mut Incoming, bound: usize) {
    let mut seen = 0usize;
    while seen < bound {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// Read the whole body within `deadline`, refusing (`413`) anything over
/// `limit` bytes and (`408`) a body sent too slowly. Over the limit, the
/// rest is read and discarded up to a bound before the answer, so that the
/// client hears it.
pub async fn read_body(
    request: Request<Incoming>,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, HttpResponse> {
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
        return Err(refuse(request, too_large()).await);
    }
    let mut body = request.into_body();
    let collect = async {
        let expected = declared.map_or(0, |len| len as usize);
        let mut collected = BytesMut::with_capacity(expected);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                closing(error(
                    StatusCode::BAD_REQUEST,
                    "could not read the body",
                    err,
                ))
            })?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            if collected.len() + data.len() > limit {
                let _ = tokio::time::timeout(LINGER_TIME, discard(&mut body, LINGER_BYTES)).await;
                return Err(closing(too_large()));
            }
            collected.extend_from_slice(data);
        }
        Ok(collected.freeze())
    };
    match tokio::time::timeout(deadline, collect).await {
        Ok(result) => result,
        Err(_) => Err(closing(error(
            StatusCode::REQUEST_TIMEOUT,
            "request timeout",
            format!(
                "the body was not received within {} s",
                deadline.as_secs_f64()
            ),
        ))),
    }
}
