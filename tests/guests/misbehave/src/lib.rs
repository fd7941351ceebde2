//! A guest for the host's fault tests: the digits of the event choose how it
//! misbehaves. Any other input gets a valid reply.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use ivr_sdk::{Action, CallEvent, Error, IvrApp, MakeCall, Reply, Say, SayAndCapture};

/// Events this instance has handled (a fresh instance per event: always 1).
static EVENTS_SEEN: AtomicU32 = AtomicU32::new(0);
/// Scratch memory in the data segment, scribbled over by `remember`.
static SCRATCH: Mutex<[u8; 64 * 1024]> = Mutex::new([0; 64 * 1024]);

struct Misbehave;

impl IvrApp for Misbehave {
    fn handle_call(event: &CallEvent) -> Result<Reply, Error> {
        match event.dtmf().unwrap_or_default() {
            "panic" => panic!("deliberate panic"),
            "error" => Err(Error::new("deliberate app error")),
            "invalid" => Ok(Reply::new().hangup().say("after the hangup")),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => Ok(Reply::new().say(format!("depth {}", recurse(0))).hangup()),
            "many-actions" => {
                let mut reply = Reply::new();
                for i in 0..10_000 {
                    reply = reply.say(format!("line {i}"));
                }
                Ok(reply.hangup())
            }
            "huge-text" => Ok(Reply::new().then(Say::new("a".repeat(1 << 20))).hangup()),
            "three-calls" => Ok(Reply::new()
                .then(MakeCall::new("+6561115777", "+6512345678"))
                .then(MakeCall::new("+6561115777", "+6512345679"))
                .then(MakeCall::new("+6561115777", "+6512345670"))),
            "max-digits-99" => {
                Ok(Reply::new().capture(SayAndCapture::new("Enter digits.").digits(1, 99)))
            }
            "read-file" => {
                let text = std::fs::read_to_string("/etc/hostname").expect("reading a host file");
                Ok(Reply::new().say(format!("The host is {text}")).hangup())
            }
            "read-env" => {
                let home = std::env::var("HOME").expect("reading an environment variable");
                Ok(Reply::new().say(format!("HOME is {home}")).hangup())
            }
            "list-args" => {
                let args: Vec<String> = std::env::args().collect();
                assert!(!args.is_empty(), "no arguments");
                Ok(Reply::new().say(format!("args {args:?}")).hangup())
            }
            "open-socket" => {
                let stream =
                    std::net::TcpStream::connect("127.0.0.1:22").expect("opening a socket");
                Ok(Reply::new()
                    .say(format!("connected {:?}", stream.peer_addr()))
                    .hangup())
            }
            "resolve-name" => {
                use std::net::ToSocketAddrs;
                let addrs: Vec<_> = ("localhost", 80)
                    .to_socket_addrs()
                    .expect("looking up a name")
                    .collect();
                Ok(Reply::new().say(format!("resolved {addrs:?}")).hangup())
            }
            "log-flood" => {
                let line = "x".repeat(1023);
                for _ in 0..100 * 1024 {
                    ivr_sdk::log::info(&line);
                }
                Ok(Reply::new().say("Flooded.").hangup())
            }
            "print-flood" => {
                let line = "y".repeat(1023);
                for _ in 0..100 * 1024 {
                    println!("{line}");
                }
                Ok(Reply::new().say("Flooded.").hangup())
            }
            "sleep-loop" => loop {
                std::thread::sleep(std::time::Duration::from_millis(10));
            },
            "sleep-long" => {
                std::thread::sleep(std::time::Duration::from_secs(3));
                Ok(Reply::new().say("Woke up.").hangup())
            }
            "state-then-error" => {
                ivr_sdk::state::set("written", "by a failed event");
                Err(Error::new("failed after writing state"))
            }
            "state-then-ok" => {
                ivr_sdk::state::set("written", "by a good event");
                Ok(Reply::new().say("Saved.").hangup())
            }
            "read-state" => {
                let value = ivr_sdk::state::get("written").unwrap_or_else(|| "nothing".into());
                Ok(Reply::new().say(format!("State holds {value}.")).hangup())
            }
            "remember" => {
                // What an earlier event left in this memory, if anything.
                let seen = EVENTS_SEEN.fetch_add(1, Ordering::SeqCst) + 1;
                let mut scratch = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
                let dirty = scratch.iter().filter(|b| **b != 0).count();
                scratch.fill(0xAB);
                let heap = vec![0x5Au8; 512 * 1024];
                std::hint::black_box(&heap);
                Ok(Reply::new()
                    .say(format!("events seen {seen}, dirty bytes {dirty}"))
                    .hangup())
            }
            "huge-error" => Err(Error::new(format!("{}\nINFO forged", "e".repeat(4 << 20)))),
            "huge-number" => {
                Ok(Reply::new().then(MakeCall::new("+6561115777", "9".repeat(4 << 20))))
            }
            "forge-log" => {
                ivr_sdk::log::info(
                    "innocent\nFORGED-HOST-LINE ivr_host: all is well\r\x1b[2Jcleared",
                );
                println!("stdout too\rFORGED-STDOUT-LINE");
                Ok(Reply::new().say("Logged.").hangup())
            }
            "fill-state" => {
                // As much state as the documented limits allow: 64 keys of 8 KiB.
                let value = "s".repeat(8 * 1024);
                for key in 0..64 {
                    ivr_sdk::state::set(&format!("key-{key}"), &value);
                }
                Ok(Reply::new().say("Filled.").hangup())
            }
            "big-reply" => {
                // A reply just within the 64 KiB and 3,000-character limits.
                let mut reply = Reply::new();
                for _ in 0..20 {
                    reply = reply.say("r".repeat(3000));
                }
                Ok(reply.hangup())
            }
            "count" => {
                // A decision that differs each time it is made in a call:
                // shows whether a repeated delivery ran the guest again.
                let count = ivr_sdk::state::get("count")
                    .and_then(|c| c.parse::<u32>().ok())
                    .unwrap_or(0)
                    + 1;
                ivr_sdk::state::set("count", &count.to_string());
                Ok(Reply::new()
                    .client_action_id("counting")
                    .say(format!("Count {count}."))
                    .hangup())
            }
            "print" => {
                println!("hello from the guest's stdout");
                eprintln!("hello from the guest's stderr");
                Ok(Reply::new().say("Printed.").hangup())
            }
            _ => Ok(Reply::from(Action::Hangup)),
        }
    }

    /// Logs what it heard, with the call's state, so tests can see the call
    /// ended on this version.
    fn session_ended(summary: &ivr_sdk::SessionSummary) {
        if summary.session_status == "SLOW" {
            // A delivery still running when the host is told to stop.
            std::thread::sleep(std::time::Duration::from_millis(800));
        }
        let state = ivr_sdk::state::get("written").unwrap_or_else(|| "nothing".into());
        ivr_sdk::log::info(&format!(
            "summary heard: session {} ended {} with state {state}",
            summary.session_id, summary.session_status
        ));
        if summary.session_status == "PANIC" {
            panic!("deliberate panic in the summary handler");
        }
    }
}

/// Recurse until the stack overflows (the result is never used).
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) + 1
}

ivr_sdk::export!(Misbehave);
