//! The smallest IVR app: greet the caller and hang up.

use ivr_sdk::{CallEvent, Error, IvrApp, Reply};

struct Hello;

impl IvrApp for Hello {
    fn handle_call(_event: &CallEvent) -> Result<Reply, Error> {
        Ok(Reply::new().say("Hello from ivr-host. Goodbye!").hangup())
    }
}

ivr_sdk::export!(Hello);
