//! Outbound HTTP from an app, over the host's `wasi:http`: only to the
//! hosts the operator lists in the app's `allowed_outbound_hosts`, and
//! within the event's budgets (by default 4 requests, 1 s to connect, 2 s
//! per request, 1 MiB per response). Every failure is an [`Error`] the app
//! can answer around, saying which limit was hit.
//!
//! The common case, JSON in and out:
//!
//! ```no_run
//! # #[derive(serde::Deserialize)] struct Balance { cents: i64 }
//! let url = ivr_sdk::config::get("balance_url").unwrap_or_default();
//! let balance: Balance = ivr_sdk::http::get(&format!("{url}?account=12345678"))?.json()?;
//! # Ok::<(), ivr_sdk::http::Error>(())
//! ```
//!
//! With headers and a body:
//!
//! ```no_run
//! let key = ivr_sdk::secrets::get("crm_key").unwrap_or_default();
//! let response = ivr_sdk::http::Request::post("https://crm.example.com/tickets")
//!     .header("authorization", &format!("Bearer {key}"))
//!     .json(&serde_json::json!({ "caller": "+6591234567" }))
//!     .send()?;
//! assert!(response.status() < 400);
//! # Ok::<(), ivr_sdk::http::Error>(())
//! ```

#[cfg(target_arch = "wasm32")]
use crate::bindings::wasi::http::outgoing_handler;
#[cfg(target_arch = "wasm32")]
use crate::bindings::wasi::http::types::{
    self as wasi, ErrorCode, Fields, IncomingBody, OutgoingBody, OutgoingRequest,
};
use crate::bindings::wasi::http::types::{Method, Scheme};
#[cfg(target_arch = "wasm32")]
use crate::bindings::wasi::io::streams::StreamError;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host is not in the app's `allowed_outbound_hosts`, or its address
    /// is one the host never reaches.
    Denied(String),
    /// The event's request budget is used up.
    TooManyRequests,
    /// The backend did not answer in time (connect or request timeout).
    Timeout,
    /// The response body was larger than the app's limit.
    BodyTooLarge,
    /// The URL is not `http(s)://host[:port][/path][?query]`.
    InvalidUrl(String),
    /// The network or the backend failed (DNS, refused connection, TLS...).
    Network(String),
    /// The body is not the JSON (or text) asked for.
    Body(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Denied(why) => write!(f, "denied by allowlist: {why}"),
            Error::TooManyRequests => f.write_str("too many requests in this event"),
            Error::Timeout => f.write_str("timeout"),
            Error::BodyTooLarge => f.write_str("body too large"),
            Error::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            Error::Network(why) => write!(f, "network error: {why}"),
            Error::Body(why) => write!(f, "unexpected body: {why}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(target_arch = "wasm32")]
fn from_code(code: &ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => Error::Denied("the host is not allowed".into()),
        ErrorCode::DestinationIpProhibited => {
            Error::Denied("the address is not one apps may reach".into())
        }
        ErrorCode::ConnectionLimitReached => Error::TooManyRequests,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => Error::Timeout,
        ErrorCode::HttpResponseBodySize(_) => Error::BodyTooLarge,
        ErrorCode::HttpRequestUriInvalid => Error::InvalidUrl("refused by the host".into()),
        other => Error::Network(format!("{other:?}")),
    }
}

/// A request being built.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// A `GET` of `url`.
    pub fn get(url: &str) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` to `url`.
    pub fn post(url: &str) -> Self {
        Self::new(Method::Post, url)
    }

    /// A `PUT` to `url`.
    pub fn put(url: &str) -> Self {
        Self::new(Method::Put, url)
    }

    /// A `DELETE` of `url`.
    pub fn delete(url: &str) -> Self {
        Self::new(Method::Delete, url)
    }

    fn new(method: Method, url: &str) -> Self {
        Self {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// Send `body` as it is.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Send `value` as JSON (`content-type: application/json`).
    pub fn json(self, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json").body(body)
    }

    /// Send the request and read the whole response, following up to 5
    /// redirects (each one a new request, checked by the host like the
    /// first; a `303`, or a `301`/`302` answering a `POST`, becomes a `GET`).
    pub fn send(self) -> Result<Response, Error> {
        let mut request = self;
        for _ in 0..MAX_REDIRECTS {
            let response = request.send_once()?;
            let Some(location) = response
                .header("location")
                .filter(|_| matches!(response.status, 301 | 302 | 303 | 307 | 308))
            else {
                return Ok(response);
            };
            let to_get = response.status == 303
                || (matches!(response.status, 301 | 302) && matches!(request.method, Method::Post));
            request.url = resolve_location(&request.url, location);
            if to_get {
                request.method = Method::Get;
                request.body = None;
                request.headers.retain(|(name, _)| name != "content-type");
            }
        }
        Err(Error::Network(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// Natively (tests): answered by [`crate::testing`]'s scripted responses.
    #[cfg(not(target_arch = "wasm32"))]
    fn send_once(&self) -> Result<Response, Error> {
        Target::parse(&self.url)?;
        let method = match &self.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other(other) => other.as_str(),
        };
        crate::testing::fetch(method, &self.url, &self.headers, self.body.as_deref())
    }

    #[cfg(target_arch = "wasm32")]
    fn send_once(&self) -> Result<Response, Error> {
        let target = Target::parse(&self.url)?;
        let headers = Fields::from_list(&self.headers)
            .map_err(|err| Error::InvalidUrl(format!("a header was refused: {err:?}")))?;
        let request = OutgoingRequest::new(headers);
        let refused = |what: &str| Error::InvalidUrl(format!("the host refused the {what}"));
        request
            .set_method(&self.method)
            .map_err(|()| refused("method"))?;
        request
            .set_scheme(Some(&target.scheme))
            .map_err(|()| refused("scheme"))?;
        request
            .set_authority(Some(&target.authority))
            .map_err(|()| refused("host"))?;
        request
            .set_path_with_query(Some(&target.path_and_query))
            .map_err(|()| refused("path"))?;
        let outgoing = request.body().map_err(|()| refused("body"))?;
        let future = outgoing_handler::handle(request, None).map_err(|code| from_code(&code))?;
        write_body(outgoing, self.body.as_deref())?;
        future.subscribe().block();
        let incoming = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(from_code(&code)),
            Some(Err(())) | None => return Err(Error::Network("the response was lost".into())),
        };
        let status = incoming.status();
        let headers = incoming.headers().entries();
        let body = incoming
            .consume()
            .map_err(|()| Error::Network("the response body was already taken".into()))?;
        let bytes = read_body(&body)?;
        drop(incoming);
        IncomingBody::finish(body);
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }
}

#[cfg(target_arch = "wasm32")]
fn write_body(outgoing: OutgoingBody, body: Option<&[u8]>) -> Result<(), Error> {
    if let Some(bytes) = body {
        let stream = outgoing
            .write()
            .map_err(|()| Error::Network("the request body could not be written".into()))?;
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|err| stream_error(&err))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| from_code(&code))
}

#[cfg(target_arch = "wasm32")]
fn read_body(body: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::Network("the response body could not be read".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(err) => return Err(stream_error(&err)),
        }
    }
    Ok(bytes)
}

#[cfg(target_arch = "wasm32")]
fn stream_error(err: &StreamError) -> Error {
    match err {
        StreamError::LastOperationFailed(io) => match wasi::http_error_code(io) {
            Some(code) => from_code(&code),
            None => Error::Network(io.to_debug_string()),
        },
        StreamError::Closed => Error::Network("the connection closed early".into()),
    }
}

/// Most redirects one [`Request::send`] follows.
const MAX_REDIRECTS: usize = 5;

/// Where a `Location` points, from the URL that answered with it.
fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    if let Some(path) = location.strip_prefix("//") {
        return format!("{scheme}://{path}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let path = &rest[authority.len()..];
    let dir = path
        .split('?')
        .next()
        .unwrap_or("")
        .rsplit_once('/')
        .map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
}

/// A URL taken apart as wasi:http wants it (natively only checked).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Target {
    scheme: Scheme,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::InvalidUrl(format!("{url:?} has no scheme")))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(Error::InvalidUrl(format!("scheme {other:?}"))),
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(Error::InvalidUrl(format!("{url:?} has no host")));
        }
        let path_and_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Self {
            scheme,
            authority: authority.to_owned(),
            path_and_query: path_and_query.split('#').next().unwrap_or("/").to_owned(),
        })
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    /// A response [`crate::testing`] scripted.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn scripted(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|_| Error::Body("not UTF-8 text".into()))
    }

    /// The body as JSON, after checking the status is a success (2xx).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        if !(200..300).contains(&self.status) {
            return Err(Error::Body(format!("status {}", self.status)));
        }
        serde_json::from_slice(&self.body).map_err(|err| Error::Body(err.to_string()))
    }
}

/// `GET url`.
///
/// ```no_run
/// let response = ivr_sdk::http::get("https://crm.example.com/callers/+6591234567")?;
/// # Ok::<(), ivr_sdk::http::Error>(())
/// ```
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

/// `POST url` with `value` as JSON.
///
/// ```no_run
/// let response = ivr_sdk::http::post_json(
///     "https://crm.example.com/tickets",
///     &serde_json::json!({ "caller": "+6591234567" }),
/// )?;
/// # Ok::<(), ivr_sdk::http::Error>(())
/// ```
pub fn post_json(url: &str, value: &impl serde::Serialize) -> Result<Response, Error> {
    Request::post(url).json(value).send()
}
