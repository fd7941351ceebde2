//! The bank-menu decisions of `examples/bank-menu`, as plain native Rust
//! (for the native-limit server B). Must give byte-identical replies.

use std::collections::HashMap;

use ivr_protocol::callflow::{Action, Callflow, MakeCall, Say, SayAndCapture};
use ivr_protocol::event::CallAction;

const VOICE: &str = "en-US-ZiraRUS";
const MAX_TRIES: u32 = 3;
const WELCOME: &str = "Welcome to Example Bank.";
const MENU: &str = "For your account balance, press 1. To speak to an agent, press 2. \
                    To hear these options again, press 3. To end the call, press 0.";
const NOT_VALID_CHOICE: &str = "Sorry, that is not a valid choice.";
const ACCOUNT_PROMPT: &str =
    "Please enter your account number, 4 to 8 digits, followed by the hash key.";
const NOT_VALID_ACCOUNT: &str = "Sorry, that is not a valid account number.";
const GOODBYE: &str = "Thank you for calling Example Bank. Goodbye.";
const TOO_MANY_TRIES: &str = "Sorry, we could not understand your choice. Goodbye.";
const CONNECTING: &str = "Please hold while we connect you to an agent.";
const NO_AGENT: &str = "Sorry, no agent is available right now. Please call again later. Goodbye.";

/// The app configuration of the benchmark.
pub struct BankConfig {
    /// `agent_number`.
    pub agent_number: String,
    /// `caller_id`.
    pub caller_id: String,
}

/// Decide the reply to `event`; `state` is the call's state.
pub fn decide(
    event: &CallAction,
    state: &mut HashMap<String, String>,
    config: &BankConfig,
) -> Callflow {
    let digits = event
        .dtmf
        .as_deref()
        .map(|d| d.trim_end_matches('#'))
        .filter(|d| !d.is_empty());
    let attempt = |rest: &str| {
        rest.parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_TRIES).contains(n))
    };
    let id = event.client_action_id.as_deref();
    if let Some(n) = id.and_then(|i| i.strip_prefix("main-")).and_then(attempt) {
        match digits {
            Some("1") => match state.get("account") {
                Some(number) if is_account(number) => balance(&number.clone()),
                _ => ask_account(1, ""),
            },
            Some("2") => Callflow {
                client_action_id: Some("transfer".into()),
                callflow: vec![
                    say(CONNECTING),
                    Action::MakeCall(MakeCall {
                        source: config.caller_id.clone(),
                        destination: config.agent_number.clone(),
                        call_recording: None,
                    }),
                ],
            },
            Some("3") => menu(1, ""),
            Some("0") => goodbye(GOODBYE),
            _ if n >= MAX_TRIES => goodbye(TOO_MANY_TRIES),
            _ => menu(n + 1, NOT_VALID_CHOICE),
        }
    } else if let Some(n) = id
        .and_then(|i| i.strip_prefix("account-"))
        .and_then(attempt)
    {
        match digits {
            Some(number) if is_account(number) => {
                state.insert("account".into(), number.to_owned());
                balance(number)
            }
            _ if n >= MAX_TRIES => goodbye(TOO_MANY_TRIES),
            _ => ask_account(n + 1, NOT_VALID_ACCOUNT),
        }
    } else if id == Some("transfer") {
        goodbye(GOODBYE)
    } else {
        menu(1, WELCOME)
    }
}

fn with_preamble(preamble: &str, text: &str) -> String {
    if preamble.is_empty() {
        text.to_owned()
    } else {
        format!("{preamble} {text}")
    }
}

fn say(text: &str) -> Action {
    Action::Say(Say {
        text: text.into(),
        voice_profile: VOICE.into(),
        repetition: None,
        speed: None,
        language: None,
    })
}

fn capture(prompt: String, min: u32, max: u32, hash: bool, overall: u32) -> Action {
    Action::SayAndCapture(SayAndCapture {
        prompt_message: prompt,
        voice_profile: VOICE.into(),
        speed: None,
        repetition: None,
        min_digits: Some(min),
        max_digits: Some(max),
        digit_timeout: Some(5000),
        overall_timeout: Some(overall),
        complete_on_hash: Some(hash),
        no_of_tries: Some(1),
        success_message: None,
        failure_message: None,
    })
}

fn menu(attempt: u32, preamble: &str) -> Callflow {
    Callflow {
        client_action_id: Some(format!("main-{attempt}")),
        callflow: vec![capture(with_preamble(preamble, MENU), 1, 1, false, 10_000)],
    }
}

fn ask_account(attempt: u32, preamble: &str) -> Callflow {
    Callflow {
        client_action_id: Some(format!("account-{attempt}")),
        callflow: vec![capture(
            with_preamble(preamble, ACCOUNT_PROMPT),
            4,
            8,
            true,
            20_000,
        )],
    }
}

fn balance(number: &str) -> Callflow {
    let hash = number.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let cents = hash % 100_000_000;
    let text = format!(
        "The balance of the account ending in {} is {} dollars and {} cents.",
        &number[number.len() - 4..],
        cents / 100,
        cents % 100
    );
    Callflow {
        client_action_id: Some("main-1".into()),
        callflow: vec![say(&text), capture(MENU.to_owned(), 1, 1, false, 10_000)],
    }
}

fn goodbye(text: &str) -> Callflow {
    Callflow {
        client_action_id: None,
        callflow: vec![say(text), Action::Hangup],
    }
}

fn is_account(digits: &str) -> bool {
    (4..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Unused in the server, kept for parity with the example's no-agent branch.
pub const NO_AGENT_TEXT: &str = NO_AGENT;
