//! The whole HTTP service against any request: arbitrary methods, paths,
//! headers, framing and bodies, sent to the real server over TCP. Whatever
//! arrives, the host answers with a well-formed status that is never a 5xx
//! (or closes the connection), and keeps serving. The fuzz target
//! `fuzz/fuzz_targets/http.rs` runs the same idea far longer, in process.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::{Host, guest};
use proptest::prelude::*;

/// A body: webhook-shaped JSON (often valid), or any bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let vca = (
        prop::sample::select(vec!["CALL_ACTION", "SESSION_SUMMARY", "CALL_STATUS", "X"]),
        "[a-z0-9]{0,8}",
        prop::option::of("[0-9#]{0,4}"),
        prop::option::of(prop::sample::select(vec!["main-1", "account-2", "transfer", "?"])),
    )
        .prop_map(|(event_type, id, dtmf, position)| {
            serde_json::json!({
                "eventType": event_type,
                "payload": {
                    "eventId": format!("e-{id}"), "sessionId": format!("s-{id}"),
                    "callStatus": if position.is_some() { "ACTION_COMPLETED" } else { "CALL_RECEIVED" },
                    "callDirection": "INBOUND", "source": "+6591178965", "destination": "+6568332048",
                    "clientActionId": position, "eventData": { "dtmf": dtmf },
                    "sessionStatus": "COMPLETED",
                }
            })
            .to_string()
            .into_bytes()
        });
    prop_oneof![
        3 => vca,
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// A raw HTTP/1.1 request with any method, path, framing and headers.
fn request() -> impl Strategy<Value = (Vec<u8>, bool)> {
    (
        prop::sample::select(vec![
            "POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "BREW",
        ]),
        prop::sample::select(vec![
            "/webhooks/vca",
            "/webhooks/vss",
            "/webhooks",
            "/healthz",
            "/apps",
            "/%ff",
            "/webhooks/vca?x=1",
            "*",
        ]),
        body(),
        prop::sample::select(vec![
            "exact",
            "chunked",
            "short",
            "long",
            "none",
            "bad",
            "huge-chunk",
        ]),
        prop::collection::vec(("[a-zA-Z-]{1,12}", "[ -~]{0,20}"), 0..3),
    )
        .prop_map(|(method, path, body, framing, headers)| {
            let mut out = format!(
                "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            );
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            let mut bytes = Vec::new();
            match framing {
                "exact" => out.push_str(&format!("content-length: {}\r\n\r\n", body.len())),
                "short" => out.push_str(&format!("content-length: {}\r\n\r\n", body.len() / 2)),
                "long" => out.push_str(&format!("content-length: {}\r\n\r\n", body.len() + 10)),
                "bad" => out.push_str("content-length: nope\r\n\r\n"),
                "chunked" => out.push_str("transfer-encoding: chunked\r\n\r\n"),
                "huge-chunk" => {
                    out.push_str("transfer-encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n")
                }
                _ => out.push_str("\r\n"),
            }
            bytes.extend_from_slice(out.as_bytes());
            if framing == "chunked" {
                for piece in body.chunks(64) {
                    bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    bytes.extend_from_slice(piece);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            } else if framing != "none" {
                bytes.extend_from_slice(&body);
            }
            (bytes, matches!(framing, "long" | "huge-chunk"))
        })
}

/// Send `bytes` on a new connection and read the answer's head (up to the
/// blank line), or what came before the server closed. `stalls`: the request
/// promises more than it sends, so the sending side is closed to end it.
fn exchange(host: &Host, bytes: &[u8], stalls: bool) -> String {
    let addr = host.webhooks.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(bytes);
    if stalls {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn any_request_gets_a_well_formed_answer_and_never_a_5xx() {
    let app = format!("bank={}", guest("bank-menu").display());
    let host = Host::start_with_env(&["--app", &app], &[("IVR_REQUEST_READ_SECS", "1")]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    let result = runner.run(&request(), |(raw, stalls)| {
        let answer = exchange(&host, &raw, stalls);
        if !answer.is_empty() {
            prop_assert!(answer.starts_with("HTTP/1.1 "), "{answer:?}");
            let status: u16 = answer[9..12].parse().unwrap_or(0);
            prop_assert!((200..500).contains(&status), "{answer:?}");
        }
        let healthy = exchange(&host, b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n", false);
        prop_assert!(healthy.starts_with("HTTP/1.1 200"), "{healthy:?}");
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}\n{}", host.log());
    }
}
