//! Server B, the native limit: the bank-menu decisions as plain native Rust
//! behind a minimal hyper server, with ivr-host's own JSON parsing,
//! validation and serialization — no wasm.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ivr_bench::bank::{BankConfig, decide};
use ivr_protocol::event::Webhook;
use ivr_protocol::{ReplyLimits, check_size, parse_webhook, validate};

type State = Arc<Mutex<HashMap<String, HashMap<String, String>>>>;

async fn handle(
    request: Request<Incoming>,
    state: State,
    config: Arc<BankConfig>,
) -> Response<Full<Bytes>> {
    let respond = |status: StatusCode, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        r.headers_mut().insert(
            "content-type",
            "application/json".parse().expect("static header"),
        );
        r
    };
    let Ok(body) = Limited::new(request.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
    else {
        return respond(StatusCode::PAYLOAD_TOO_LARGE, Bytes::from_static(b"{}"));
    };
    match parse_webhook(&body) {
        Ok(Webhook::CallAction(event)) => {
            let flow = {
                let mut calls = state.lock().unwrap_or_else(|p| p.into_inner());
                let call = calls.entry(event.session_id.clone()).or_default();
                decide(&event, call, &config)
            };
            let limits = ReplyLimits::default();
            let json = flow.to_json();
            if validate(&flow, &limits).is_err() || check_size(&json, &limits).is_err() {
                return respond(StatusCode::INTERNAL_SERVER_ERROR, Bytes::from_static(b"{}"));
            }
            respond(StatusCode::OK, Bytes::from(json))
        }
        Ok(_) => respond(StatusCode::OK, Bytes::from_static(b"{}")),
        Err(err) => respond(
            StatusCode::BAD_REQUEST,
            Bytes::from(serde_json::json!({ "error": err.message }).to_string()),
        ),
    }
}

fn main() -> anyhow::Result<()> {
    // The same allocator settings as ivr-host (A): `compare` starts this
    // server with MIMALLOC_PURGE_DECOMMITS=0 and MIMALLOC_ALLOW_THP=0
    // (ALLOCATOR_AS_IN_A), what `ivr_host::tune_allocator` sets in A.
    tokio::runtime::Runtime::new()?.block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "native listening webhooks=http://{}",
        listener.local_addr()?
    );
    let state: State = Arc::default();
    let config = Arc::new(BankConfig {
        agent_number: "+6560002222".into(),
        caller_id: "+6561110000".into(),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (state, config) = (state.clone(), config.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (state, config) = (state.clone(), config.clone());
                async move { Ok::<_, Infallible>(handle(req, state, config).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
