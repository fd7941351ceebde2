//! Sending one outbound request: a connection pool per app whose connector
//! resolves the name, checks every address (see [`super::network`]) and
//! connects within the connect budget; TLS with rustls and the webpki
//! roots; the response body counted against its size and time budgets.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::network::OutboundNetwork;
use super::{Budgets, RequestLog};

/// An app's connection pool.
pub(crate) type AppClient = Client<HttpsConnector<CheckedConnector>, WasiBody>;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// Most idle pooled connections per backend.
const POOL_IDLE_PER_HOST: usize = 32;

/// A pool for one app: connections are never shared between apps.
pub(crate) fn app_client(
    network: Arc<OutboundNetwork>,
    connect_timeout: Duration,
) -> anyhow::Result<AppClient> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(CheckedConnector {
            network,
            connect_timeout,
        });
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .build(https))
}

/// Resolves, checks every address, connects within the connect budget.
#[derive(Clone)]
pub(crate) struct CheckedConnector {
    network: Arc<OutboundNetwork>,
    connect_timeout: Duration,
}

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("DNS lookup of {host:?} failed: {reason}")]
    Dns { host: String, reason: String },
    #[error("address refused: {0}")]
    Prohibited(String),
    #[error("no connection within the {0} ms connect timeout")]
    Timeout(u128),
    #[error("connecting to {addr} failed: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl tower_service::Service<Uri> for CheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let network = self.network.clone();
        let budget = self.connect_timeout;
        Box::pin(async move {
            match tokio::time::timeout(budget, connect(&network, &uri)).await {
                Ok(result) => result,
                Err(_) => Err(ConnectError::Timeout(budget.as_millis())),
            }
        })
    }
}

async fn connect(network: &OutboundNetwork, uri: &Uri) -> Result<TokioIo<TcpStream>, ConnectError> {
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let dns = |reason: String| ConnectError::Dns {
        host: host.to_owned(),
        reason,
    };
    let addrs: Vec<SocketAddr> = match host.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|err| dns(err.to_string()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(dns("no addresses".into()));
    }
    // Every address the name has must be allowed: a name that also points
    // somewhere forbidden is refused whole, not tried until one works.
    for addr in &addrs {
        network.check(addr.ip()).map_err(ConnectError::Prohibited)?;
    }
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(TokioIo::new(stream));
            }
            Err(source) => last = Some(ConnectError::Io { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| dns("no addresses".into())))
}

/// The wasi:http error for a failed request, and the words for the trace.
pub(crate) fn classify(err: &hyper_util::client::legacy::Error) -> (HttpError, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(connect) = current.downcast_ref::<ConnectError>() {
            let code = match connect {
                ConnectError::Dns { reason, .. } => HttpError::DnsError {
                    rcode: Some(reason.clone()),
                    info_code: None,
                },
                ConnectError::Prohibited(_) => HttpError::DestinationIpProhibited,
                ConnectError::Timeout(_) => HttpError::ConnectionTimeout,
                ConnectError::Io { source, .. } => match source.kind() {
                    std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                    _ => HttpError::DestinationUnavailable,
                },
            };
            return (code, connect.to_string());
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && err.is_connect()
        {
            // TLS failures surface from the connector as I/O errors.
            return (HttpError::TlsProtocolError, format!("TLS: {io}"));
        }
        source = current.source();
    }
    if err.is_connect() {
        return (HttpError::ConnectionRefused, format!("connect: {err}"));
    }
    (HttpError::HttpProtocolError, format!("{err}"))
}

/// Send `request` on `client` within `budgets`; the response's body is
/// bounded and counted into `log[index]`.
pub(crate) async fn send(
    client: AppClient,
    request: http::Request<WasiBody>,
    budgets: Budgets,
    log: RequestLog,
    index: usize,
) -> Result<http::Response<WasiBody>, HttpError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + budgets.request);
    let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
        Err(_) => {
            log.finish(
                index,
                None,
                format!(
                    "timeout: no response within {} ms",
                    budgets.request.as_millis()
                ),
                started,
            );
            return Err(HttpError::HttpResponseTimeout);
        }
        Ok(Err(err)) => {
            let (code, words) = classify(&err);
            log.finish(index, None, words, started);
            return Err(code);
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    log.status(index, status, started);
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > budgets.response_bytes) {
        log.finish(
            index,
            Some(status),
            format!(
                "response body too large: {} bytes declared, at most {}",
                declared.unwrap_or(0),
                budgets.response_bytes
            ),
            started,
        );
        return Err(HttpError::HttpResponseBodySize(declared));
    }
    Ok(response.map(|body| {
        BoundedBody {
            inner: body,
            limit: budgets.response_bytes,
            received: 0,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            log,
            index,
            started,
            done: false,
        }
        .boxed_unsync()
    }))
}

/// A response body cut off at its size limit and its request's deadline,
/// counting the bytes the guest received into the trace.
struct BoundedBody {
    inner: Incoming,
    limit: u64,
    received: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    log: RequestLog,
    index: usize,
    started: Instant,
    done: bool,
}

impl BoundedBody {
    fn end(&mut self, error: Option<String>) {
        if !self.done {
            self.done = true;
            self.log
                .body_end(self.index, self.received, error, self.started);
        }
    }
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.end(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => {
                self.end(Some(format!("response body: {err}")));
                Poll::Ready(Some(Err(HttpError::HttpResponseIncomplete)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    if self.received > self.limit {
                        let limit = self.limit;
                        self.end(Some(format!("response body too large: over {limit} bytes")));
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            self.received,
                        )))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.end(Some(
                        "timeout: the body did not arrive within the request time".into(),
                    ));
                    Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for BoundedBody {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.log
                .body_end(self.index, self.received, None, self.started);
        }
    }
}
