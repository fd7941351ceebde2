//! A guest for the host's outbound, kv and secrets tests. The event's
//! digits are a command (`get URL`, `kv-set KEY VALUE [TTL]`, ...); the
//! reply says what happened, so a test reads the outcome from the callflow.

use ivr_sdk::{CallEvent, Error, IvrApp, Reply, SayAndCapture, http, kv, log, secrets};

struct Reach;

impl IvrApp for Reach {
    fn handle_call(event: &CallEvent) -> Result<Reply, Error> {
        let Some(command) = event.dtmf() else {
            return Ok(Reply::new()
                .client_action_id("go")
                .capture(SayAndCapture::new("Say a command.").digits(1, 25)));
        };
        let words: Vec<&str> = command.split_whitespace().collect();
        let said = match words.as_slice() {
            ["get", url] => fetch(url),
            ["getn", n, url] => {
                let n: usize = n.parse().unwrap_or(1);
                (0..n).map(|_| fetch(url)).collect::<Vec<_>>().join("; ")
            }
            ["post", url] => match http::Request::post(url)
                .header("content-type", "application/json")
                .body(format!("{{\"caller\":\"{}\"}}", event.caller_number()))
                .send()
            {
                Ok(r) => format!("status {} body {}", r.status(), r.text().unwrap_or("?")),
                Err(err) => format!("error {err}"),
            },
            ["kv-set", key, value] => show(kv::set(key, value)),
            ["kv-set", key, value, ttl] => {
                show(kv::set_with_ttl(key, value, ttl.parse().unwrap_or(1)))
            }
            ["kv-get", key] => match kv::get(key) {
                Ok(Some(value)) => format!("value {value}"),
                Ok(None) => "unset".into(),
                Err(err) => format!("error {err}"),
            },
            ["kv-del", key] => show(kv::delete(key)),
            ["kv-incr", key, delta] => match kv::increment(key, delta.parse().unwrap_or(1)) {
                Ok(n) => format!("count {n}"),
                Err(err) => format!("error {err}"),
            },
            ["kv-fill", key, size] => {
                let value = "x".repeat(size.parse().unwrap_or(0));
                show(kv::set(key, &value))
            }
            ["secret-log", name] => {
                let value = secrets::get(name).unwrap_or_default();
                log::info(&format!("the secret is {value}"));
                println!("printed secret {value}");
                format!("secret {value}")
            }
            ["secret-error", name] => {
                let value = secrets::get(name).unwrap_or_default();
                return Err(Error::new(format!("failed with {value}")));
            }
            ["secret-fetch", name, url] => {
                let value = secrets::get(name).unwrap_or_default();
                fetch(&format!("{url}/{value}?key={value}"))
            }
            ["panic"] => panic!("deliberate panic"),
            _ => format!("unknown command {command:?}"),
        };
        Ok(Reply::new().say(said).hangup())
    }
}

fn fetch(url: &str) -> String {
    match http::get(url) {
        Ok(response) => format!(
            "status {} bytes {}",
            response.status(),
            response.bytes().len()
        ),
        Err(err) => format!("error {err}"),
    }
}

fn show(result: Result<(), kv::Error>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(err) => format!("error {err}"),
    }
}

ivr_sdk::export!(Reach);
