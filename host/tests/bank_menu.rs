//! End to end over real HTTP: the real `ivr-host` binary serving the
//! `bank-menu` example compiled for wasm32-wasip2, driven through every
//! branch of the menu, each reply checked exactly.

mod common;

use common::{Call, Host, guest};
use serde_json::{Value, json};

const VOICE: &str = "en-US-ZiraRUS";
const WELCOME: &str = "Welcome to Example Bank.";
const MENU: &str = "For your account balance, press 1. To speak to an agent, press 2. \
                    To hear these options again, press 3. To end the call, press 0.";
const ACCOUNT_PROMPT: &str =
    "Please enter your account number, 4 to 8 digits, followed by the hash key.";
const AGENT: &str = "+6560002222";
const CALLER_ID: &str = "+6561110000";

fn bank_host() -> Host {
    let app = format!("bank-menu={}", guest("bank-menu").display());
    Host::start(&[
        "--app",
        &app,
        "--app-config",
        &format!("bank-menu.agent_number={AGENT}"),
        "--app-config",
        &format!("bank-menu.caller_id={CALLER_ID}"),
    ])
}

fn menu_capture(prompt: &str) -> Value {
    json!({ "action": "sayAndCapture", "params": {
        "promptMessage": prompt, "voiceProfile": VOICE,
        "minDigits": 1, "maxDigits": 1, "digitTimeout": 5000, "overallTimeout": 10000,
        "completeOnHash": false, "noOfTries": 1 } })
}

fn main_menu(attempt: u32, preamble: &str) -> Value {
    let prompt = if preamble.is_empty() {
        MENU.to_owned()
    } else {
        format!("{preamble} {MENU}")
    };
    json!({ "clientActionId": format!("main-{attempt}"), "callflow": [menu_capture(&prompt)] })
}

fn account_prompt(attempt: u32, preamble: &str) -> Value {
    let prompt = if preamble.is_empty() {
        ACCOUNT_PROMPT.to_owned()
    } else {
        format!("{preamble} {ACCOUNT_PROMPT}")
    };
    json!({ "clientActionId": format!("account-{attempt}"), "callflow": [
        { "action": "sayAndCapture", "params": {
            "promptMessage": prompt, "voiceProfile": VOICE,
            "minDigits": 4, "maxDigits": 8, "digitTimeout": 5000, "overallTimeout": 20000,
            "completeOnHash": true, "noOfTries": 1 } }
    ] })
}

/// The same FNV-1a derivation as the example, to check the spoken balance.
fn balance_text(number: &str) -> String {
    let hash = number.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let cents = hash % 100_000_000;
    format!(
        "The balance of the account ending in {} is {} dollars and {} cents.",
        &number[number.len() - 4..],
        cents / 100,
        cents % 100
    )
}

fn balance(number: &str) -> Value {
    json!({ "clientActionId": "main-1", "callflow": [
        { "action": "say", "params": { "text": balance_text(number), "voiceProfile": VOICE } },
        menu_capture(MENU)
    ] })
}

fn goodbye(text: &str) -> Value {
    json!({ "callflow": [
        { "action": "say", "params": { "text": text, "voiceProfile": VOICE } },
        { "action": "hangup" }
    ] })
}

const GOODBYE: &str = "Thank you for calling Example Bank. Goodbye.";
const TOO_MANY_TRIES: &str = "Sorry, we could not understand your choice. Goodbye.";

#[test]
fn balance_branch_asks_once_per_call_then_reads_from_state() {
    let host = bank_host();
    let mut call = Call::new();
    assert_eq!(call.step(&host, None), main_menu(1, WELCOME));
    assert_eq!(call.step(&host, Some("1")), account_prompt(1, ""));
    assert_eq!(call.step(&host, Some("12345678#")), balance("12345678"));
    // The account number is in the call's state now: no second question.
    assert_eq!(call.step(&host, Some("1")), balance("12345678"));
    assert_eq!(call.step(&host, Some("0")), goodbye(GOODBYE));

    // Another call does not see the first call's account number.
    let mut other = Call::new();
    other.step(&host, None);
    assert_eq!(other.step(&host, Some("1")), account_prompt(1, ""));
}

#[test]
fn transfer_branch_dials_the_configured_agent() {
    let host = bank_host();
    let mut call = Call::new();
    call.step(&host, None);
    assert_eq!(
        call.step(&host, Some("2")),
        json!({ "clientActionId": "transfer", "callflow": [
            { "action": "say", "params": { "text": "Please hold while we connect you to an agent.", "voiceProfile": VOICE } },
            { "action": "makeCall", "params": { "source": CALLER_ID, "destination": AGENT } }
        ] })
    );
    // If 8x8 reports the bridge finished, the app says goodbye.
    assert_eq!(call.step(&host, None), goodbye(GOODBYE));
}

#[test]
fn transfer_without_configuration_apologises() {
    let app = format!("bank-menu={}", guest("bank-menu").display());
    let host = Host::start(&["--app", &app]);
    let mut call = Call::new();
    call.step(&host, None);
    assert_eq!(
        call.step(&host, Some("2")),
        goodbye("Sorry, no agent is available right now. Please call again later. Goodbye.")
    );
    assert!(
        host.log()
            .contains("agent_number or caller_id is not configured"),
        "{}",
        host.log()
    );
}

#[test]
fn repeat_and_goodbye_branches() {
    let host = bank_host();
    let mut call = Call::new();
    call.step(&host, None);
    assert_eq!(call.step(&host, Some("3")), main_menu(1, ""));
    assert_eq!(call.step(&host, Some("3")), main_menu(1, ""));
    assert_eq!(call.step(&host, Some("0")), goodbye(GOODBYE));
}

#[test]
fn invalid_digits_and_no_input_retry_up_to_three_tries() {
    let host = bank_host();
    let mut call = Call::new();
    call.step(&host, None);
    assert_eq!(
        call.step(&host, Some("9")),
        main_menu(2, "Sorry, that is not a valid choice.")
    );
    assert_eq!(
        call.step(&host, None),
        main_menu(3, "Sorry, that is not a valid choice.")
    );
    assert_eq!(call.step(&host, None), goodbye(TOO_MANY_TRIES));

    // A valid choice after a retry resets nothing it should not: it just works.
    let mut second = Call::new();
    second.step(&host, None);
    second.step(&host, Some("7"));
    assert_eq!(second.step(&host, Some("0")), goodbye(GOODBYE));
}

#[test]
fn bad_account_numbers_retry_up_to_three_tries() {
    let host = bank_host();
    let mut call = Call::new();
    call.step(&host, None);
    call.step(&host, Some("1"));
    let retry = "Sorry, that is not a valid account number.";
    assert_eq!(call.step(&host, Some("12#")), account_prompt(2, retry));
    assert_eq!(call.step(&host, None), account_prompt(3, retry));
    assert_eq!(call.step(&host, Some("123456789")), goodbye(TOO_MANY_TRIES));
}

#[test]
fn the_references_samples_get_valid_callflows() {
    let host = bank_host();
    let fixtures = format!("{}/tests/fixtures/reference", env!("CARGO_MANIFEST_DIR"));
    // Inbound first contact (§3.3): the welcome menu.
    let inbound =
        std::fs::read_to_string(format!("{fixtures}/vca_inbound_call_received.json")).unwrap();
    let (status, body) = host.post("/webhooks/vca", &inbound);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        main_menu(1, WELCOME)
    );
    // The corrected documented sample (§3.3): `ivr1_level1` is not one of
    // bank-menu's positions, so it starts over, on the generic endpoint too.
    let sample = std::fs::read_to_string(format!("{fixtures}/vca_action_completed.json")).unwrap();
    let (status, body) = host.post("/webhooks", &sample);
    assert_eq!(status, 200);
    let reply: ivr_host::protocol::Callflow = serde_json::from_str(&body).unwrap();
    ivr_host::protocol::validate(&reply, &Default::default()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        main_menu(1, WELCOME)
    );
}

#[test]
fn a_repeated_delivery_gets_the_first_reply() {
    let host = bank_host();
    let mut call = Call::new();
    call.step(&host, None);
    let event = call.event(Some("9"));
    let first = host.vca(&event);
    assert_eq!(first, main_menu(2, "Sorry, that is not a valid choice."));
    for _ in 0..3 {
        assert_eq!(host.vca(&event), first);
    }
    // A repeat arriving after the call's state changed: decided again, it
    // would read the balance from the state instead of asking.
    call.client_action_id = Some("main-1".into());
    let balance_choice = call.event(Some("1"));
    let asked = host.vca(&balance_choice);
    assert_eq!(asked, account_prompt(1, ""));
    call.client_action_id = Some("account-1".into());
    host.vca(&call.event(Some("12345678#")));
    assert_eq!(
        host.vca(&balance_choice),
        asked,
        "the repeat was decided again"
    );
}

/// A bank host whose balance comes from `balance_url`, allowed `allowed`
/// (loopback reachable), with the API key secret set.
fn backed_host(balance_url: &str, allowed: &str, extra: Value) -> Host {
    let host = Host::start_with_env(
        &["--outbound-private-networks", "127.0.0.0/8"],
        &[("IVR_ADMIN_TOKEN", common::TOKEN)],
    );
    host.deploy("bank-menu", &guest("bank-menu"));
    let mut config = json!({ "balance_url": balance_url });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            config[k] = v.clone();
        }
    }
    let (status, _) = host.admin_call(
        "PUT",
        "/apps/bank-menu/config",
        Some(config.to_string().as_bytes()),
    );
    assert_eq!(status, 200);
    let settings = json!({ "allowed_outbound_hosts": [allowed], "outbound_request_ms": 500 });
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/bank-menu/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = host.admin_call(
        "PUT",
        "/apps/bank-menu/secrets/balance_api_key",
        Some(b"bank-key-0042"),
    );
    assert_eq!(status, 200);
    host
}

/// The balance step's spoken text for account 12345678.
fn balance_said(host: &Host) -> String {
    let mut call = Call::new();
    call.step(host, None);
    call.step(host, Some("1"));
    let reply = call.step(host, Some("12345678#"));
    reply["callflow"][0]["params"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const NO_BALANCE: &str = "Sorry, we cannot reach your account right now. Please try again later.";

#[test]
fn the_balance_comes_from_the_backend_with_the_secret_key() {
    let backend = common::backend::Backend::start();
    let host = backed_host(&format!("{}/json", backend.url), &backend.url, json!({}));
    assert_eq!(
        balance_said(&host),
        "The balance of the account ending in 5678 is 123 dollars and 45 cents."
    );
    let seen = backend.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["GET /json?account=12345678 HTTP/1.1 auth=Bearer bank-key-0042"]
    );
    assert!(!host.log().contains("bank-key-0042"));
}

#[test]
fn a_backend_down_slow_or_denied_gets_a_polite_sorry() {
    let backend = common::backend::Backend::start();
    // Down: nothing listens on the port of a backend that is gone.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://127.0.0.1:{}", gone.local_addr().unwrap().port());
    drop(gone);
    for (url, allowed) in [
        (format!("{gone_url}/json"), gone_url.clone()),
        (format!("{}/hang", backend.url), backend.url.clone()),
        (
            format!("{}/json", backend.url),
            "https://bank.example".to_owned(),
        ),
    ] {
        let host = backed_host(&url, &allowed, json!({}));
        assert_eq!(balance_said(&host), NO_BALANCE, "{url}");
        assert!(host.log().contains("balance backend: "), "{}", host.log());
    }
}

#[test]
fn a_returning_caller_is_welcomed_back() {
    let backend = common::backend::Backend::start();
    let host = backed_host(
        &format!("{}/json", backend.url),
        &backend.url,
        json!({ "greet_returning_callers": "true" }),
    );
    let first = Call::new().step(&host, None);
    assert!(
        first["callflow"][0]["params"]["promptMessage"]
            .as_str()
            .unwrap()
            .starts_with("Welcome to Example Bank. "),
        "{first}"
    );
    let again = Call::new().step(&host, None);
    assert!(
        again["callflow"][0]["params"]["promptMessage"]
            .as_str()
            .unwrap()
            .starts_with("Welcome back to Example Bank. "),
        "{again}"
    );
}
