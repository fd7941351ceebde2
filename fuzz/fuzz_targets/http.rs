//! The whole webhook listener over in-memory IO: any bytes a client sends
//! get well-formed answers that are never a 5xx, or a closed connection;
//! never a panic or a hang.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ivr_host::edge::WebhookEdge;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    edge: Arc<WebhookEdge>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let settings = ivr_host::config::Settings::resolve(ivr_host::config::ServeArgs {
            data_dir: Some(dir.path().join("data")),
            ..Default::default()
        })
        .unwrap();
        let service = runtime
            .block_on(ivr_host::embedded::open(&settings))
            .unwrap();
        let edge = Arc::new(WebhookEdge {
            service,
            body_limit: 64 * 1024,
            auth_header: None,
            read_timeout: Duration::from_millis(200),
        });
        Fixture {
            runtime,
            edge,
            _dir: dir,
        }
    })
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let fixture = fixture();
    fixture.runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let edge = fixture.edge.clone();
        let service = service_fn(move |request| {
            let edge = edge.clone();
            async move { Ok::<_, std::convert::Infallible>(edge.handle(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service);
        let serving = tokio::spawn(connection);
        let _ = client.write_all(input).await;
        let _ = client.shutdown().await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer));
        assert!(read.await.is_ok(), "the connection hung");
        let _ = serving.await;
        let text = String::from_utf8_lossy(&answer);
        for status in text.match_indices("HTTP/1.1 ").filter_map(|(at, _)| text.get(at + 9..at + 12)) {
            let code: u16 = status.parse().unwrap_or(0);
            assert!((200..500).contains(&code), "answered {code}: {text}");
        }
    });
});
