//! `compare`'s reply check over the real path: the driver's branch script
//! against the native server (B) is byte-identical run after run, and a
//! server answering differently is caught and named.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// A server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// B on an ephemeral port, and its VCA webhook URL.
fn start_native() -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_native"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the native server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the native server's address line");
    let base = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("webhooks="))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (Server(child), format!("{base}/webhooks/vca"))
}

/// `drive check URL`: one reply per line.
fn check(url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_drive"))
        .args(["check", url])
        .output()
        .expect("running the driver");
    assert!(
        output.status.success(),
        "drive check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 replies")
}

/// A server that answers every request with the same hangup, whatever the
/// caller pressed.
fn start_always_hangup() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let reply = r#"{"callflow":[{"action":"hangup"}]}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    format!("http://{address}/webhooks/vca")
}

#[test]
fn the_reply_check_passes_on_identical_servers_and_names_a_difference() {
    let (_first, first_url) = start_native();
    let (_second, second_url) = start_native();
    let reference = check(&first_url);
    assert!(
        reference.lines().count() >= 20,
        "the branch script gave {} replies",
        reference.lines().count()
    );
    assert_eq!(
        ivr_bench::first_difference(&reference, &check(&second_url)),
        None
    );

    let wrong = check(&start_always_hangup());
    let difference = ivr_bench::first_difference(&reference, &wrong)
        .expect("a server that always hangs up answers differently");
    assert!(
        difference.starts_with("reply 1: ") && difference.contains(r#"{"action":"hangup"}"#),
        "{difference}"
    );
}
