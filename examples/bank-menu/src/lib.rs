//! A realistic bank phone menu.
//!
//! Main menu (one digit): 1 → account balance, 2 → transfer to an agent,
//! 3 → hear the options again, 0 → goodbye. No input or an invalid digit
//! gets a retry prompt, up to three tries, then goodbye.
//!
//! The balance asks for a 4–8 digit account number ended with `#`, keeps it
//! in the call's state (so asking again in the same call skips the question),
//! and reads back the balance: from the bank's backend when the
//! configuration names one (`balance_url`; the request carries the secret
//! `balance_api_key` as a bearer token, and a backend that is down, slow or
//! not allowed gets a polite sorry), else derived from the number. The
//! transfer dials the app configuration's `agent_number` with `caller_id`
//! as the caller id.
//!
//! With `greet_returning_callers = true` in the configuration, the app
//! counts each caller's calls in its key-value store and welcomes back a
//! caller who called before.
//!
//! The menu position and the try count travel in the reply's
//! `client_action_id`: `main-N` and `account-N` (N = the try, 1..=3), and
//! `transfer` once the caller is being connected.

use ivr_sdk::{
    CallEvent, Error, IvrApp, MakeCall, Reply, SayAndCapture, config, http, kv, log, secrets, state,
};

/// Tries allowed for each question before the app says goodbye.
const MAX_TRIES: u32 = 3;

const WELCOME: &str = "Welcome to Example Bank.";
const WELCOME_BACK: &str = "Welcome back to Example Bank.";
const NO_BALANCE: &str = "Sorry, we cannot reach your account right now. Please try again later.";
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

/// The state key holding the caller's account number.
const ACCOUNT_KEY: &str = "account";

struct BankMenu;

/// Where the caller is in the menu, decoded from `client_action_id`.
enum Position {
    Start,
    Main { attempt: u32 },
    Account { attempt: u32 },
    Transfer,
}

impl Position {
    fn of(event: &CallEvent) -> Position {
        let Some(id) = event.client_action_id() else {
            return Position::Start;
        };
        let attempt = |rest: &str| {
            rest.parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_TRIES).contains(n))
        };
        if let Some(n) = id.strip_prefix("main-").and_then(attempt) {
            Position::Main { attempt: n }
        } else if let Some(n) = id.strip_prefix("account-").and_then(attempt) {
            Position::Account { attempt: n }
        } else if id == "transfer" {
            Position::Transfer
        } else {
            log::warn(&format!("unknown clientActionId {id:?}; starting over"));
            Position::Start
        }
    }
}

impl IvrApp for BankMenu {
    fn handle_call(event: &CallEvent) -> Result<Reply, Error> {
        let digits = event
            .dtmf()
            .map(|d| d.trim_end_matches('#'))
            .filter(|d| !d.is_empty());
        Ok(match Position::of(event) {
            Position::Start => main_menu(1, welcome(event)),
            Position::Main { attempt } => match digits {
                Some("1") => balance_or_ask(),
                Some("2") => transfer(),
                Some("3") => main_menu(1, ""),
                Some("0") => goodbye(GOODBYE),
                _ if attempt >= MAX_TRIES => goodbye(TOO_MANY_TRIES),
                _ => main_menu(attempt + 1, NOT_VALID_CHOICE),
            },
            Position::Account { attempt } => match digits {
                Some(number) if is_account_number(number) => {
                    state::set(ACCOUNT_KEY, number);
                    balance(number)
                }
                _ if attempt >= MAX_TRIES => goodbye(TOO_MANY_TRIES),
                _ => ask_account(attempt + 1, NOT_VALID_ACCOUNT),
            },
            Position::Transfer => goodbye(GOODBYE),
        })
    }
}

/// The greeting: a returning caller is welcomed back when the app is
/// configured to remember callers (in its key-value store, across calls).
fn welcome(event: &CallEvent) -> &'static str {
    if config::get("greet_returning_callers").as_deref() != Some("true") {
        return WELCOME;
    }
    match kv::increment(&format!("calls:{}", event.caller_number()), 1) {
        Ok(calls) if calls > 1 => WELCOME_BACK,
        Ok(_) => WELCOME,
        Err(err) => {
            log::warn(&format!("could not count the caller's calls: {err}"));
            WELCOME
        }
    }
}

/// The main menu, preceded by `preamble` when it is not empty.
fn main_menu(attempt: u32, preamble: &str) -> Reply {
    let prompt = if preamble.is_empty() {
        MENU.to_owned()
    } else {
        format!("{preamble} {MENU}")
    };
    Reply::new()
        .client_action_id(format!("main-{attempt}"))
        .capture(SayAndCapture::new(prompt))
}

fn ask_account(attempt: u32, preamble: &str) -> Reply {
    let prompt = if preamble.is_empty() {
        ACCOUNT_PROMPT.to_owned()
    } else {
        format!("{preamble} {ACCOUNT_PROMPT}")
    };
    Reply::new()
        .client_action_id(format!("account-{attempt}"))
        .capture(
            SayAndCapture::new(prompt)
                .digits(4, 8)
                .complete_on_hash(true)
                .timeouts_ms(5_000, 20_000),
        )
}

/// Read the balance of the account already given in this call, or ask for it.
fn balance_or_ask() -> Reply {
    match state::get(ACCOUNT_KEY) {
        Some(number) if is_account_number(&number) => balance(&number),
        _ => ask_account(1, ""),
    }
}

fn balance(number: &str) -> Reply {
    let text = match config::get("balance_url") {
        None => balance_text(number, balance_cents(number)),
        Some(url) => match fetch_balance(&url, number) {
            Ok(cents) => balance_text(number, cents),
            Err(err) => {
                log::warn(&format!("balance backend: {err}"));
                NO_BALANCE.to_owned()
            }
        },
    };
    Reply::new()
        .client_action_id("main-1")
        .say(text)
        .capture(SayAndCapture::new(MENU))
}

fn balance_text(number: &str, cents: u64) -> String {
    let ending = &number[number.len() - 4..];
    format!(
        "The balance of the account ending in {ending} is {} dollars and {} cents.",
        cents / 100,
        cents % 100
    )
}

/// The balance from the bank's backend: `GET {url}?account=N` answering
/// `{"cents": N}`, with the secret `balance_api_key` as a bearer token.
fn fetch_balance(url: &str, number: &str) -> Result<u64, http::Error> {
    #[derive(serde::Deserialize)]
    struct Balance {
        cents: u64,
    }
    let mut request = http::Request::get(&format!("{url}?account={number}"));
    if let Some(key) = secrets::get("balance_api_key") {
        request = request.header("authorization", &format!("Bearer {key}"));
    }
    let balance: Balance = request.send()?.json()?;
    Ok(balance.cents)
}

fn transfer() -> Reply {
    match (config::get("caller_id"), config::get("agent_number")) {
        (Some(caller_id), Some(agent)) => Reply::new()
            .client_action_id("transfer")
            .say(CONNECTING)
            .then(MakeCall::new(caller_id, agent)),
        _ => {
            log::error("agent_number or caller_id is not configured; cannot transfer");
            goodbye(NO_AGENT)
        }
    }
}

fn goodbye(text: &str) -> Reply {
    Reply::new().say(text).hangup()
}

fn is_account_number(digits: &str) -> bool {
    (4..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A balance derived deterministically from the account number (FNV-1a),
/// below one million dollars.
fn balance_cents(number: &str) -> u64 {
    let hash = number.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash % 100_000_000
}

ivr_sdk::export!(BankMenu);

#[cfg(test)]
mod tests {
    //! Every branch of the menu, natively: `cargo test -p bank-menu`.
    use super::*;
    use ivr_sdk::testing::{self, Call};

    fn new_call() -> Call<BankMenu> {
        testing::reset();
        testing::config("agent_number", "+6560002222");
        testing::config("caller_id", "+6561110000");
        Call::start()
    }

    #[test]
    fn the_balance_is_asked_once_per_call_then_read_from_state() {
        let mut call = new_call();
        call.hears(WELCOME).hears(MENU);
        call.press("1").hears(ACCOUNT_PROMPT);
        call.press("12345678#")
            .hears("The balance of the account ending in 5678 is 855155 dollars and 65 cents.");
        assert_eq!(call.state(ACCOUNT_KEY).as_deref(), Some("12345678"));
        call.press("1").hears("ending in 5678");
        call.press("0").hears(GOODBYE);
        assert!(call.ended());

        // Another call does not see the first call's account number.
        let mut other = Call::<BankMenu>::start();
        other.press("1").hears(ACCOUNT_PROMPT);
    }

    #[test]
    fn the_transfer_dials_the_configured_agent_or_apologises() {
        let mut call = new_call();
        call.press("2").hears(CONNECTING);
        let dialled = call.dials().expect("a makeCall");
        assert_eq!(
            (dialled.source.as_str(), dialled.destination.as_str()),
            ("+6561110000", "+6560002222")
        );
        call.press("").hears(GOODBYE);

        testing::reset();
        let mut call = Call::<BankMenu>::start();
        call.press("2").hears(NO_AGENT);
        assert!(call.ended());
        assert!(
            testing::logs()
                .iter()
                .any(|(_, line)| line.contains("not configured"))
        );
    }

    #[test]
    fn repeat_invalid_digits_and_no_input_retry_three_times() {
        let mut call = new_call();
        call.press("3").hears(MENU);
        assert_eq!(call.reply().client_action_id.as_deref(), Some("main-1"));
        call.press("9").hears(NOT_VALID_CHOICE);
        call.timed_out().hears(NOT_VALID_CHOICE);
        assert_eq!(call.reply().client_action_id.as_deref(), Some("main-3"));
        call.press("7").hears(TOO_MANY_TRIES);
        assert!(call.ended());

        let mut call = Call::<BankMenu>::start();
        call.press("1").press("12").hears(NOT_VALID_ACCOUNT);
        call.press("abc#").press("123456789#").hears(TOO_MANY_TRIES);
        assert_eq!(call.state(ACCOUNT_KEY), None);
    }

    #[test]
    fn the_balance_comes_from_the_backend_when_configured() {
        let mut call = new_call();
        testing::config("balance_url", "https://api.bank.example/balance");
        testing::secret("balance_api_key", "key-0042");
        testing::respond(
            "https://api.bank.example/balance",
            200,
            r#"{"cents":12345}"#,
        );
        call.press("1")
            .press("12345678#")
            .hears("123 dollars and 45 cents");
        let sent = testing::requests();
        assert_eq!(
            sent[0].url,
            "https://api.bank.example/balance?account=12345678"
        );
        assert!(
            sent[0]
                .headers
                .contains(&("authorization".into(), "Bearer key-0042".into()))
        );

        for outcome in [
            Err(ivr_sdk::http::Error::Timeout),
            Err(ivr_sdk::http::Error::Denied("not allowed".into())),
            Ok(503),
        ] {
            let mut call = new_call();
            testing::config("balance_url", "https://api.bank.example/balance");
            match outcome {
                Err(err) => testing::fail("https://api.bank.example", err),
                Ok(status) => testing::respond("https://api.bank.example", status, "down"),
            }
            call.press("1")
                .press("12345678#")
                .hears(NO_BALANCE)
                .hears(MENU);
        }
    }

    #[test]
    fn a_returning_caller_is_welcomed_back() {
        let mut first = new_call();
        first.hears(WELCOME);
        testing::config("greet_returning_callers", "true");
        Call::<BankMenu>::start().hears(WELCOME);
        Call::<BankMenu>::start().hears(WELCOME_BACK);
        Call::<BankMenu>::inbound("+6590000000", "+6568888888").hears(WELCOME);
        assert_eq!(testing::kv_get("calls:+6591234567").as_deref(), Some("2"));
    }

    #[test]
    fn account_numbers_are_four_to_eight_digits() {
        assert!(is_account_number("1234"));
        assert!(is_account_number("12345678"));
        assert!(!is_account_number("123"));
        assert!(!is_account_number("123456789"));
        assert!(!is_account_number("12a4"));
    }
}
