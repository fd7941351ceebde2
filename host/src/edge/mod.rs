//! The HTTP edge: listeners, per-connection HTTP/1.1, routing of paths to
//! the webhook and admin handlers, graceful shutdown. Knows neither wasm nor
//! 8x8 field names.

pub mod admin;
pub mod http;
pub mod webhooks;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

pub use admin::AdminEdge;
use http::HttpResponse;
pub use webhooks::WebhookEdge;

/// A handler for every request of one listener.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, request: Request<Incoming>) -> impl Future<Output = HttpResponse> + Send;
}

impl Handler for WebhookEdge {
    fn handle(&self, request: Request<Incoming>) -> impl Future<Output = HttpResponse> + Send {
        WebhookEdge::handle(self, request)
    }
}

impl Handler for AdminEdge {
    fn handle(&self, request: Request<Incoming>) -> impl Future<Output = HttpResponse> + Send {
        AdminEdge::handle(self, request)
    }
}

/// How long in-flight requests may take to finish after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections being refused at once (each gets a short `503`); beyond
/// this, new connections over the limit are closed without an answer.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Time allowed to send a refusal.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Accept errors (typically out of file descriptors) back off from this...
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// ...doubling up to this.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How one listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Most connections open at once; more are refused with `503`.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also how long an
    /// idle keep-alive connection stays open).
    pub header_timeout: Duration,
}

/// Accept connections on `listener` and serve them with `handler` until
/// `shutdown` flips to true; then finish in-flight requests and return.
///
/// At most `limits.max_connections` are served at once; one more is
/// answered `503` and closed, so a flood of connections (slow or idle)
/// cannot take every file descriptor, and each listener has its own bound.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(err) => {
                tracing::warn!("accept failed: {err}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse_connection(stream, limits.max_connections, &refusing);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(request).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(err) = connection.await {
                tracing::debug!("connection ended with an error: {err}");
            }
        });
    }
    // New connections are refused from now on, not left in the backlog.
    drop(listener);
    // Idle keep-alive connections close now; busy ones finish their request,
    // answered with `Connection: close`, then close.
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still busy {DRAIN_TIMEOUT:?} after shutdown began");
    }
}

/// Tell a client over the connection limit why, then close. The answer is
/// written at once (a new socket's send buffer has room for it); a task then
/// reads what the client may already have sent, briefly, before closing,
/// so that the close does not reset the connection and discard the answer
/// on the client's side. Beyond [`MAX_REFUSALS_IN_FLIGHT`] such tasks, the
/// socket is closed at once.
fn refuse_connection(stream: TcpStream, limit: usize, refusing: &Arc<Semaphore>) {
    tracing::warn!("refused a connection: {limit} connections are open on this listener");
    let body = format!(
        r#"{{"error":"too many connections","detail":"{limit} connections are open on this listener; try again later"}}"#
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.try_write(answer.as_bytes()).is_err() {
        return;
    }
    let Ok(refusal) = refusing.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let _refusal = refusal;
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

/// How many connections each listener may hold, given the process's file
/// descriptor limit (raised to its hard limit first): `reserved`
/// descriptors stay for files, databases and the rest of the host, the
/// admin listener gets its own share so that no flood on the webhook
/// listener can lock operators out, and the webhook listener gets at most
/// `webhook_wanted`.
pub fn connection_budget(webhook_wanted: usize) -> (usize, usize) {
    const RESERVED: usize = 128;
    const ADMIN: usize = 64;
    let available = raise_open_file_limit().saturating_sub(RESERVED).max(8);
    let admin = ADMIN.min(available / 4).max(2);
    let webhooks = webhook_wanted.min(available - admin).max(1);
    (webhooks, admin)
}

/// Raise the soft limit on open files to the hard limit; the soft limit
/// in force afterwards.
fn raise_open_file_limit() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 1024;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
        }
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Bind `addr`, naming it in the error.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|err| anyhow::anyhow!("cannot listen for {what} on {addr}: {err}"))
}

/// Connections the kernel may hold for the accept loop: a burst of calls
/// (8x8 retrying a backlog of events) arriving while every worker runs
/// guests must not overflow the queue (the kernel caps it at somaxconn).
const LISTEN_BACKLOG: u32 = 4096;
