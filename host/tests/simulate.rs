//! `ivr-host simulate`: whole calls through the real runtime and sandbox,
//! no server, from flags or a script on stdin; a fault fails the command.

mod common;

use std::process::{Command, Output};

use common::backend::Backend;
use common::guest;

fn simulate(args: &[&str], stdin: &str) -> Output {
    common::with_stdin(
        Command::new(env!("CARGO_BIN_EXE_ivr-host"))
            .arg("simulate")
            .args(args)
            .env("IVR_LOG", "warn"),
        stdin,
    )
}

/// The output without the per-step timings and fuel (`[…]`).
fn steps(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split("  [").next().unwrap_or(line).to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_whole_bank_call_from_flags_is_shown_step_by_step_and_repeatable() {
    let bank = guest("bank-menu");
    let args = [
        bank.to_str().unwrap(),
        "--config",
        "agent_number=+6560002222",
        "--config",
        "caller_id=+6561110000",
        "--press",
        "1",
        "--press",
        "12345678#",
        "--press",
        "",
        "--press",
        "2",
    ];
    let first = simulate(&args, "");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let shown = steps(&first);
    let expected = [
        "── step 1: the call arrives",
        "   asks  \"Welcome to Example Bank. For your account balance, press 1. To speak to an agent, press 2. To hear these options again, press 3. To end the call, press 0.\"  (digits 1–1)",
        "── step 2: presses 1",
        "   asks  \"Please enter your account number, 4 to 8 digits, followed by the hash key.\"  (digits 4–8, # ends)",
        "── step 3: presses 12345678#",
        "   state account = \"12345678\"",
        "   says  \"The balance of the account ending in 5678 is 855155 dollars and 65 cents.\"",
    ];
    for line in expected {
        assert!(shown.contains(line), "missing {line:?} in:\n{shown}");
    }
    assert!(shown.contains("── step 4: no digits (timeout)"), "{shown}");
    assert!(
        shown.ends_with("   dials +6560002222 (caller id +6561110000)"),
        "{shown}"
    );
    // Deterministic: the same inputs, the same steps.
    assert_eq!(steps(&simulate(&args, "")), shown);
}

#[test]
fn digits_can_come_from_a_script_on_stdin() {
    let bank = guest("bank-menu");
    let output = simulate(&[bank.to_str().unwrap()], "1\n4321#\n0\n");
    assert!(output.status.success());
    let shown = steps(&output);
    assert!(shown.contains("ending in 4321"), "{shown}");
    assert!(shown.ends_with("   hangs up"), "{shown}");
}

#[test]
fn a_fault_is_named_and_fails_the_command() {
    let reach = guest("reach");
    let output = simulate(&[reach.to_str().unwrap(), "--press", "panic"], "");
    assert_eq!(output.status.code(), Some(1));
    let shown = steps(&output);
    assert!(shown.contains("FAULT trap: "), "{shown}");
    assert!(shown.contains("deliberate panic"), "{shown}");
    assert!(
        shown.contains("the caller would hear the app's fallback"),
        "{shown}"
    );
}

#[test]
fn outbound_requests_follow_the_allowlist_and_are_shown() {
    let backend = Backend::start();
    let reach = guest("reach");
    let get = format!("get {}/ok", backend.url);
    let output = simulate(
        &[
            reach.to_str().unwrap(),
            "--allow",
            &backend.url,
            "--outbound-private-networks",
            "127.0.0.0/8",
            "--press",
            &get,
        ],
        "",
    );
    let shown = steps(&output);
    assert!(
        shown.contains(&format!("   http  GET {}/ok → 200, 5 bytes", backend.url)),
        "{shown}"
    );
    assert!(shown.contains("says  \"status 200 bytes 5\""), "{shown}");
    let denied = simulate(&[reach.to_str().unwrap(), "--press", &get], "");
    let shown = steps(&denied);
    assert!(shown.contains("→ denied: "), "{shown}");
}
