//! The rules a callflow must follow before it is sent to 8x8 (reference
//! §4.4, §4.5 and the checklist of §13.2), plus the host's reply limits.

use super::callflow::{Action, Callflow, MakeCall, PlayFile, Say, SayAndCapture};

/// Longest `text`, `promptMessage`, `successMessage` or `failureMessage`, in characters.
pub const MAX_TEXT_CHARS: usize = 3000;
/// Most `makeCall` actions in one callflow (no conferencing).
pub const MAX_MAKE_CALLS: usize = 2;
/// Most digits a `sayAndCapture` may ask for.
pub const MAX_DIGITS: u32 = 25;
/// Longest `clientActionId` the host passes on.
pub const MAX_CLIENT_ACTION_ID_CHARS: usize = 256;

/// Size limits on a reply, configurable per host and app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Most actions in one callflow.
    pub max_actions: usize,
    /// Largest serialized reply, in bytes.
    pub max_bytes: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        Self {
            max_actions: 32,
            max_bytes: 64 * 1024,
        }
    }
}

/// A broken rule: where (`callflow[1].params.text`) and which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {rule}")]
pub struct Violation {
    /// The JSON path of the offending value.
    pub at: String,
    /// The rule, in words.
    pub rule: String,
}

fn violation(at: impl Into<String>, rule: impl Into<String>) -> Violation {
    Violation {
        at: at.into(),
        rule: rule.into(),
    }
}

/// Check a callflow against 8x8's rules and the reply limits (except the
/// serialized size, which [`check_size`] checks on the bytes).
pub fn validate(reply: &Callflow, limits: &ReplyLimits) -> Result<(), Violation> {
    if let Some(id) = &reply.client_action_id {
        if id.is_empty() {
            return Err(violation(
                "clientActionId",
                "must not be empty when present",
            ));
        }
        if id.chars().count() > MAX_CLIENT_ACTION_ID_CHARS {
            return Err(violation(
                "clientActionId",
                format!("must be at most {MAX_CLIENT_ACTION_ID_CHARS} characters"),
            ));
        }
        if id.chars().any(char::is_control) {
            return Err(violation(
                "clientActionId",
                "must not contain control characters",
            ));
        }
    }
    let actions = &reply.callflow;
    if actions.is_empty() {
        return Err(violation("callflow", "must contain at least one action"));
    }
    if actions.len() > limits.max_actions {
        return Err(violation(
            "callflow",
            format!(
                "has {} actions; at most {} are allowed",
                actions.len(),
                limits.max_actions
            ),
        ));
    }
    let make_calls = actions
        .iter()
        .filter(|a| matches!(a, Action::MakeCall(_)))
        .count();
    if make_calls > MAX_MAKE_CALLS {
        return Err(violation(
            "callflow",
            format!("has {make_calls} makeCall actions; at most {MAX_MAKE_CALLS} are allowed"),
        ));
    }
    let last = actions.len() - 1;
    for (i, action) in actions.iter().enumerate() {
        let at = format!("callflow[{i}]");
        match action {
            Action::Hangup if i != last => {
                return Err(violation(at, "hangup must be the last action"));
            }
            Action::SayAndCapture(_) if i != last => {
                return Err(violation(
                    at,
                    format!(
                        "sayAndCapture must be the last action (found {} after it)",
                        actions[i + 1].name()
                    ),
                ));
            }
            _ => {}
        }
        let params = format!("{at}.params");
        match action {
            Action::MakeCall(p) => check_make_call(&params, p)?,
            Action::Say(p) => check_say(&params, p)?,
            Action::SayAndCapture(p) => check_say_and_capture(&params, p)?,
            Action::PlayFile(p) => check_play_file(&params, p)?,
            Action::Hangup => {}
        }
    }
    Ok(())
}

/// Check the serialized size of a reply.
pub fn check_size(json: &[u8], limits: &ReplyLimits) -> Result<(), Violation> {
    if json.len() > limits.max_bytes {
        return Err(violation(
            "reply",
            format!(
                "is {} bytes; at most {} are allowed",
                json.len(),
                limits.max_bytes
            ),
        ));
    }
    Ok(())
}

fn check_make_call(at: &str, p: &MakeCall) -> Result<(), Violation> {
    check_number(&format!("{at}.source"), &p.source)?;
    check_number(&format!("{at}.destination"), &p.destination)
}

fn check_say(at: &str, p: &Say) -> Result<(), Violation> {
    check_text(&format!("{at}.text"), &p.text)?;
    check_voice(&format!("{at}.voiceProfile"), &p.voice_profile)?;
    check_repetition(&format!("{at}.repetition"), p.repetition)?;
    check_speed(&format!("{at}.speed"), p.speed)?;
    if let Some(language) = &p.language
        && language.trim().is_empty()
    {
        return Err(violation(
            format!("{at}.language"),
            "must not be empty when present",
        ));
    }
    Ok(())
}

fn check_say_and_capture(at: &str, p: &SayAndCapture) -> Result<(), Violation> {
    check_text(&format!("{at}.promptMessage"), &p.prompt_message)?;
    check_voice(&format!("{at}.voiceProfile"), &p.voice_profile)?;
    check_repetition(&format!("{at}.repetition"), p.repetition)?;
    check_speed(&format!("{at}.speed"), p.speed)?;
    for (name, message) in [
        ("successMessage", &p.success_message),
        ("failureMessage", &p.failure_message),
    ] {
        if let Some(text) = message {
            check_text(&format!("{at}.{name}"), text)?;
        }
    }
    if let Some(min) = p.min_digits {
        if min < 1 {
            return Err(violation(format!("{at}.minDigits"), "must be at least 1"));
        }
        if p.max_digits.is_none() {
            return Err(violation(
                format!("{at}.maxDigits"),
                "is required when minDigits is given",
            ));
        }
    }
    if let Some(max) = p.max_digits
        && !(1..=MAX_DIGITS).contains(&max)
    {
        return Err(violation(
            format!("{at}.maxDigits"),
            format!("must be between 1 and {MAX_DIGITS} (got {max})"),
        ));
    }
    if let (Some(min), Some(max)) = (p.min_digits, p.max_digits)
        && min > max
    {
        return Err(violation(
            format!("{at}.minDigits"),
            format!("must not exceed maxDigits ({min} > {max})"),
        ));
    }
    if p.complete_on_hash == Some(false) && p.max_digits.is_none() {
        return Err(violation(
            format!("{at}.maxDigits"),
            "is required when completeOnHash is false",
        ));
    }
    if let Some(digit) = p.digit_timeout {
        if digit < 1 {
            return Err(violation(
                format!("{at}.digitTimeout"),
                "must be at least 1 ms",
            ));
        }
        match p.overall_timeout {
            None => {
                return Err(violation(
                    format!("{at}.overallTimeout"),
                    "is required when digitTimeout is given",
                ));
            }
            Some(overall) if overall <= digit => {
                return Err(violation(
                    format!("{at}.overallTimeout"),
                    format!("must be greater than digitTimeout ({overall} <= {digit})"),
                ));
            }
            Some(_) => {}
        }
    }
    if p.overall_timeout == Some(0) {
        return Err(violation(
            format!("{at}.overallTimeout"),
            "must be at least 1 ms",
        ));
    }
    if p.no_of_tries == Some(0) {
        return Err(violation(format!("{at}.noOfTries"), "must be at least 1"));
    }
    Ok(())
}

fn check_play_file(at: &str, p: &PlayFile) -> Result<(), Violation> {
    let url = p.file_url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| violation(format!("{at}.fileUrl"), "must be an http or https URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.len() != p.file_url.len() || url.chars().any(char::is_whitespace) {
        return Err(violation(
            format!("{at}.fileUrl"),
            "must be an http or https URL with a host and no spaces",
        ));
    }
    check_repetition(&format!("{at}.repetition"), p.repetition)
}

fn check_text(at: &str, text: &str) -> Result<(), Violation> {
    if text.trim().is_empty() {
        return Err(violation(at, "must not be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(violation(
            at,
            format!("must be at most {MAX_TEXT_CHARS} characters (got {chars})"),
        ));
    }
    Ok(())
}

fn check_voice(at: &str, voice: &str) -> Result<(), Violation> {
    if voice.trim().is_empty() {
        return Err(violation(at, "must not be empty"));
    }
    Ok(())
}

fn check_repetition(at: &str, repetition: Option<u8>) -> Result<(), Violation> {
    match repetition {
        Some(n) if !(1..=3).contains(&n) => {
            Err(violation(at, format!("must be 1, 2 or 3 (got {n})")))
        }
        _ => Ok(()),
    }
}

fn check_speed(at: &str, speed: Option<f64>) -> Result<(), Violation> {
    match speed {
        Some(s) if !(0.5..=2.0).contains(&s) => Err(violation(
            at,
            format!("must be between 0.5 and 2.0 (got {s})"),
        )),
        _ => Ok(()),
    }
}

/// An E.164 number, `+` optional: 3 to 15 digits.
fn check_number(at: &str, number: &str) -> Result<(), Violation> {
    if !crate::rules::is_e164(number) {
        return Err(violation(
            at,
            format!("must be an E.164 number, + optional (got {number:?})"),
        ));
    }
    Ok(())
}
