//! An app written against `ivr:app@0.2.0` with wit-bindgen directly (the
//! SDK follows the current contract): counts the events of a call in its
//! state, reads a config value and logs, as apps built before 0.3.0 do.

wit_bindgen::generate!({
    world: "ivr-app",
    path: "../../../wit/v0.2.0",
});

use ivr::app::types::{Action, Level, Say};
use ivr::app::{config, log, state};

struct Legacy;

impl Guest for Legacy {
    fn handle_call_action(event: CallEvent) -> Result<Reply, AppError> {
        let events: u32 = state::get("events")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            + 1;
        state::set("events", &events.to_string());
        let greeting = config::get("greeting").unwrap_or_else(|| "hello".into());
        log::log(Level::Info, &format!("legacy event {events}"));
        Ok(Reply {
            client_action_id: Some(format!("legacy-{events}")),
            actions: vec![Action::Say(Say {
                text: format!(
                    "{greeting} from 0.2.0, event {events} of {}",
                    event.session_id
                ),
                voice_profile: "en-US-ZiraRUS".into(),
                repetition: None,
                speed: None,
                language: None,
            })],
        })
    }

    fn handle_session_summary(_summary: SessionSummary) {}
}

export!(Legacy);
