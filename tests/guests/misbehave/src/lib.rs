//! A guest for the host's fault tests: the digits of the event choose how it
//! misbehaves. Any other input gets a valid reply.

use ivr_sdk::{Action, CallEvent, Error, IvrApp, Reply};

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
            "print" => {
                println!("hello from the guest's stdout");
                eprintln!("hello from the guest's stderr");
                Ok(Reply::new().say("Printed.").hangup())
            }
            _ => Ok(Reply::from(Action::Hangup)),
        }
    }
}

ivr_sdk::export!(Misbehave);
