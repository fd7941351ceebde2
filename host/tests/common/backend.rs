//! A small HTTP/1.1 backend on 127.0.0.1 for the outbound tests: a thread
//! per connection, keep-alive, and a few routes that misbehave on purpose.
//!
//! - `/ok` → `hello`; `/json` → `{"cents":12345}`
//! - `/big` → 5 MiB
//! - `/slow/MS` → waits MS milliseconds, then `slow`
//! - `/hang` → says nothing for 30 s
//! - `/redirect?to=URL` → `302` to URL
//! - anything else → `200` echoing the path

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running backend.
pub struct Backend {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Requests answered or started so far.
    pub requests: Arc<AtomicUsize>,
    /// The requests received: the request line (`GET /path?query HTTP/1.1`),
    /// then ` auth=VALUE` when an `Authorization` header came with it.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    /// Start a backend on an ephemeral port of 127.0.0.1.
    pub fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        // std listens with a backlog of 128; a thousand calls connecting at
        // once need more (Linux takes a second listen() as a new backlog).
        // SAFETY: listen() on the listener's own open socket.
        unsafe {
            libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 4096);
        }
        let port = listener.local_addr().unwrap().port();
        let backend = Backend {
            url: format!("http://127.0.0.1:{port}"),
            port,
            connections: Arc::default(),
            requests: Arc::default(),
            seen: Arc::default(),
        };
        let (connections, requests, seen) = (
            backend.connections.clone(),
            backend.requests.clone(),
            backend.seen.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                connections.fetch_add(1, Ordering::SeqCst);
                let (requests, seen) = (requests.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &requests, &seen));
            }
        });
        backend
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, requests: &AtomicUsize, seen: &Mutex<Vec<String>>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut line = line.trim_end().to_owned();
        let request_line = line.clone();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("authorization") {
                    line.push_str(&format!(" auth={}", value.trim()));
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        seen.lock().unwrap().push(line.clone());
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (status, extra, payload): (&str, String, Vec<u8>) = match path {
            "/ok" => ("200 OK", String::new(), b"hello".to_vec()),
            "/json" => ("200 OK", String::new(), br#"{"cents":12345}"#.to_vec()),
            "/big" => ("200 OK", String::new(), vec![b'x'; 5 << 20]),
            "/hang" => {
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            "/redirect" => (
                "302 Found",
                format!("location: {}\r\n", query.trim_start_matches("to=")),
                Vec::new(),
            ),
            p if p.starts_with("/slow/") => {
                let ms = p["/slow/".len()..].parse().unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                ("200 OK", String::new(), b"slow".to_vec())
            }
            p => ("200 OK", String::new(), p.as_bytes().to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n",
            payload.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&payload).is_err() {
            return;
        }
    }
}
