//! Test an app natively — no host, no wasm, no phone: `cargo test` runs the
//! app's own handler through whole calls, with the imports it uses served
//! in memory (per-call state, config, secrets, the key-value store, and
//! scripted HTTP responses, each assertable afterwards), and every reply
//! checked against the host's own reply rules ([`crate::Reply::check`]).
//!
//! ```
//! use ivr_sdk::{CallEvent, Error, IvrApp, Reply, SayAndCapture, testing};
//!
//! struct Menu;
//!
//! impl IvrApp for Menu {
//!     fn handle_call(event: &CallEvent) -> Result<Reply, Error> {
//!         Ok(match event.dtmf() {
//!             None => Reply::new().capture(SayAndCapture::new("Press 1 for news.")),
//!             Some("1") => Reply::new().say("Today is sunny.").hangup(),
//!             Some(_) => Reply::new().say("Goodbye.").hangup(),
//!         })
//!     }
//! }
//!
//! let mut call = testing::Call::<Menu>::start();
//! call.hears("Press 1");
//! call.press("1").hears("sunny");
//! assert!(call.ended());
//! ```
//!
//! Each test thread has its own environment: set [`config`], [`secret`]
//! and [`respond`] before the call; [`requests`], [`logs`] and [`kv_get`]
//! tell afterwards what the app did. [`reset`] starts over.
//!
//! Native only (the wasm build gets the host's real imports).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::actions::{Action, MakeCall};
use crate::wit::{self, CallDirection, CallStatus, CallType, Level};
use crate::{CallEvent, Error, IvrApp, Reply};

/// One scripted HTTP answer.
#[derive(Debug, Clone)]
struct Scripted {
    url_prefix: String,
    outcome: Result<(u16, Vec<u8>), crate::http::Error>,
}

/// A request the app made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The whole URL, query included.
    pub url: String,
    /// The headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

#[derive(Default)]
pub(crate) struct Env {
    pub(crate) state: HashMap<String, String>,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) secrets: BTreeMap<String, String>,
    pub(crate) kv: BTreeMap<String, (String, Option<Instant>)>,
    kv_quota: Option<u64>,
    scripted: Vec<Scripted>,
    requests: Vec<SentRequest>,
    logs: Vec<(Level, String)>,
}

thread_local! {
    static ENV: RefCell<Env> = RefCell::new(Env::default());
}

pub(crate) fn with<R>(f: impl FnOnce(&mut Env) -> R) -> R {
    ENV.with(|env| f(&mut env.borrow_mut()))
}

/// Forget everything: state, config, secrets, kv, scripted responses, records.
pub fn reset() {
    with(|env| *env = Env::default());
}

/// Set a configuration value (what `--app-config NAME.KEY=VALUE` sets).
pub fn config(key: &str, value: &str) {
    with(|env| env.config.insert(key.to_owned(), value.to_owned()));
}

/// Set a secret (what `ivr-host secrets set` sets).
pub fn secret(key: &str, value: &str) {
    with(|env| env.secrets.insert(key.to_owned(), value.to_owned()));
}

/// Answer requests whose URL starts with `url_prefix` with `status` and `body`.
pub fn respond(url_prefix: &str, status: u16, body: &str) {
    with(|env| {
        env.scripted.push(Scripted {
            url_prefix: url_prefix.to_owned(),
            outcome: Ok((status, body.as_bytes().to_vec())),
        })
    });
}

/// Fail requests whose URL starts with `url_prefix` with `error` (a
/// timeout, a denial, ...). A request no script matches is denied, as the
/// host denies a host the app is not allowed.
pub fn fail(url_prefix: &str, error: crate::http::Error) {
    with(|env| {
        env.scripted.push(Scripted {
            url_prefix: url_prefix.to_owned(),
            outcome: Err(error),
        })
    });
}

/// The requests the app made so far.
pub fn requests() -> Vec<SentRequest> {
    with(|env| env.requests.clone())
}

/// The lines the app logged so far (level, message).
pub fn logs() -> Vec<(Level, String)> {
    with(|env| env.logs.clone())
}

/// A key of the app's key-value store, as the app would read it.
pub fn kv_get(key: &str) -> Option<String> {
    kv::get(key).ok().flatten()
}

/// The key-value quota, in bytes (the host's default: 16 MiB).
pub fn kv_quota(bytes: u64) {
    with(|env| env.kv_quota = Some(bytes));
}

pub(crate) fn log(level: Level, message: &str) {
    with(|env| env.logs.push((level, message.to_owned())));
}

/// The in-memory key-value store, with the host's limits.
pub(crate) mod kv {
    use super::*;
    use crate::kv::Error;

    fn live(entry: &(String, Option<Instant>)) -> bool {
        entry.1.is_none_or(|at| Instant::now() < at)
    }

    fn check(key: &str, value: Option<&str>) -> Result<(), Error> {
        if key.len() > 256 {
            return Err(Error::KeyTooLong(key.len() as u32));
        }
        match value {
            Some(v) if v.len() > 64 * 1024 => Err(Error::ValueTooLarge(v.len() as u32)),
            _ => Ok(()),
        }
    }

    fn write(key: &str, value: String, expires: Option<Instant>) -> Result<(), Error> {
        with(|env| {
            let quota = env.kv_quota.unwrap_or(16 << 20);
            let used: usize = env
                .kv
                .iter()
                .filter(|(k, e)| k.as_str() != key && live(e))
                .map(|(k, (v, _))| k.len() + v.len())
                .sum();
            if (used + key.len() + value.len()) as u64 > quota {
                return Err(Error::QuotaExceeded(quota));
            }
            env.kv.insert(key.to_owned(), (value, expires));
            Ok(())
        })
    }

    pub(crate) fn get(key: &str) -> Result<Option<String>, Error> {
        check(key, None)?;
        Ok(with(|env| {
            env.kv.get(key).filter(|e| live(e)).map(|e| e.0.clone())
        }))
    }

    pub(crate) fn set(key: &str, value: &str, ttl: Option<u32>) -> Result<(), Error> {
        check(key, Some(value))?;
        let expires = ttl.map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        write(key, value.to_owned(), expires)
    }

    pub(crate) fn delete(key: &str) -> Result<(), Error> {
        check(key, None)?;
        with(|env| env.kv.remove(key));
        Ok(())
    }

    pub(crate) fn increment(key: &str, delta: i64) -> Result<i64, Error> {
        check(key, None)?;
        let (current, expires) = with(|env| {
            env.kv
                .get(key)
                .filter(|e| live(e))
                .map(|(v, at)| (Some(v.clone()), *at))
                .unwrap_or((None, None))
        });
        let value = match current {
            Some(text) => text.trim().parse::<i64>().map_err(|_| Error::NotANumber)?,
            None => 0,
        };
        let next = value.checked_add(delta).ok_or(Error::NotANumber)?;
        write(key, next.to_string(), expires)?;
        Ok(next)
    }
}

/// Answer one request from the scripted responses (recording it).
pub(crate) fn fetch(
    method: &str,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: Option<&[u8]>,
) -> Result<crate::http::Response, crate::http::Error> {
    with(|env| {
        env.requests.push(SentRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            body: String::from_utf8_lossy(body.unwrap_or_default()).into_owned(),
        });
        let scripted = env
            .scripted
            .iter()
            .rev()
            .find(|s| url.starts_with(&s.url_prefix))
            .map(|s| s.outcome.clone());
        match scripted {
            Some(Ok((status, body))) => Ok(crate::http::Response::scripted(status, body)),
            Some(Err(err)) => Err(err),
            None => Err(crate::http::Error::Denied(format!(
                "no scripted response for {url} (testing::respond)"
            ))),
        }
    })
}

/// A simulated call to app `A`: each step builds the event 8x8 would send
/// (session id, event ids and the echoed `clientActionId` threaded as 8x8
/// does), runs the app's handler, checks its reply against the host's
/// rules, and keeps the call's state only when the app answered (as the
/// host does).
pub struct Call<A: IvrApp> {
    session: String,
    from: String,
    to: String,
    events: u32,
    reply: Reply,
    _app: PhantomData<A>,
}

impl<A: IvrApp> Call<A> {
    /// An inbound call from `+6591234567` to the virtual number `+6568888888`,
    /// its first event answered.
    pub fn start() -> Self {
        Self::inbound("+6591234567", "+6568888888")
    }

    /// An inbound call from `from` to the virtual number `to`, its first
    /// event answered. Panics when the app fails or its reply breaks a rule.
    pub fn inbound(from: &str, to: &str) -> Self {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        with(|env| env.state.clear());
        let mut call = Self {
            session: format!("test-session-{n}"),
            from: from.to_owned(),
            to: to.to_owned(),
            events: 0,
            reply: Reply::new(),
            _app: PhantomData,
        };
        call.step(None);
        call
    }

    /// The caller presses `digits` (e.g. `"1"`, `"12345678#"`).
    pub fn press(&mut self, digits: &str) -> &mut Self {
        self.step(Some(digits));
        self
    }

    /// The caller presses nothing before the capture times out.
    pub fn timed_out(&mut self) -> &mut Self {
        self.step(None);
        self
    }

    /// The next event, answered: `Ok` with the app's reply (already checked
    /// against the host's rules), or the app's error (the caller would hear
    /// the app's fallback).
    pub fn try_step(&mut self, digits: Option<&str>) -> Result<&Reply, Error> {
        let event = self.event(digits);
        let before = with(|env| env.state.clone());
        match A::handle_call(&event) {
            Ok(reply) => {
                reply.check().map_err(|rule| {
                    Error::new(format!("the host would refuse the reply: {rule}"))
                })?;
                self.reply = reply;
                Ok(&self.reply)
            }
            Err(err) => {
                with(|env| env.state = before);
                Err(err)
            }
        }
    }

    fn step(&mut self, digits: Option<&str>) {
        if let Err(err) = self.try_step(digits) {
            panic!("event {} of the call failed: {err}", self.events);
        }
    }

    /// The event 8x8 would send next.
    fn event(&mut self, digits: Option<&str>) -> CallEvent {
        self.events += 1;
        let first = self.events == 1;
        CallEvent::from_wit(wit::CallEvent {
            event_id: format!("{}-event-{}", self.session, self.events),
            call_id: format!("{}-leg", self.session),
            session_id: self.session.clone(),
            sub_account_id: "test_account".into(),
            call_status: if first {
                CallStatus::CallReceived
            } else {
                CallStatus::ActionCompleted
            },
            call_direction: CallDirection::Inbound,
            call_type: CallType::Pstn,
            source: self.from.clone(),
            destination: self.to.clone(),
            source_format: Some("MSISDN".into()),
            destination_format: Some("MSISDN".into()),
            source_country_code: None,
            destination_country_code: None,
            source_ref_id: None,
            destination_ref_id: None,
            call_duration: u64::from(self.events - 1) * 5,
            dtmf: digits.map(str::to_owned),
            sip_code: 200,
            timestamp: "2026-01-13T08:31:51.123Z".into(),
            client_action_id: if first {
                None
            } else {
                self.reply.client_action_id.clone()
            },
        })
    }

    /// The last reply.
    pub fn reply(&self) -> &Reply {
        &self.reply
    }

    /// What the caller hears from the last reply: each say and prompt text,
    /// and each played file's URL.
    pub fn heard(&self) -> Vec<String> {
        self.reply
            .actions
            .iter()
            .filter_map(|action| match action {
                Action::Say(say) => Some(say.text.clone()),
                Action::SayAndCapture(capture) => Some(capture.prompt_message.clone()),
                Action::PlayFile(file) => Some(file.file_url.clone()),
                Action::MakeCall(_) | Action::Hangup => None,
            })
            .collect()
    }

    /// Assert that the caller hears `text` (part of a say or prompt) in the
    /// last reply; panics naming what was heard instead.
    pub fn hears(&mut self, text: &str) -> &mut Self {
        let heard = self.heard();
        assert!(
            heard.iter().any(|h| h.contains(text)),
            "the caller should hear {text:?}; heard {heard:#?}"
        );
        self
    }

    /// The number the last reply dials, if it bridges the call.
    pub fn dials(&self) -> Option<&MakeCall> {
        self.reply.actions.iter().find_map(|action| match action {
            Action::MakeCall(call) => Some(call),
            _ => None,
        })
    }

    /// True when the last reply hangs up.
    pub fn ended(&self) -> bool {
        self.reply.actions.last() == Some(&Action::Hangup)
    }

    /// The call's state now.
    pub fn state(&self, key: &str) -> Option<String> {
        with(|env| env.state.get(key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SayAndCapture, http, state};

    /// Counts its events in the call's state; digits choose a misdeed.
    struct Probe;

    impl IvrApp for Probe {
        fn handle_call(event: &CallEvent) -> Result<Reply, Error> {
            let n: u32 = state::get("n").and_then(|v| v.parse().ok()).unwrap_or(0) + 1;
            state::set("n", &n.to_string());
            match event.dtmf() {
                Some("fail") => Err(Error::new("deliberate")),
                Some("bad") => Ok(Reply::new().hangup().say("after the hangup")),
                Some("fetch") => {
                    let said = match http::get("https://crm.example/caller") {
                        Ok(r) => format!("status {}", r.status()),
                        Err(err) => format!("error {err}"),
                    };
                    Ok(Reply::new().say(said).hangup())
                }
                _ => Ok(Reply::new()
                    .client_action_id(format!("step-{n}"))
                    .capture(SayAndCapture::new(format!("Event {n}.")))),
            }
        }
    }

    #[test]
    fn events_thread_like_8x8s_and_state_is_kept_only_on_a_reply() {
        reset();
        let mut call = Call::<Probe>::start();
        call.hears("Event 1.");
        call.press("1").hears("Event 2.");
        assert_eq!(call.reply().client_action_id.as_deref(), Some("step-2"));
        let failed = call.try_step(Some("fail")).map(|_| ()).unwrap_err();
        assert_eq!(failed.message(), "deliberate");
        assert_eq!(call.state("n").as_deref(), Some("2"), "rolled back");
        let refused = call.try_step(Some("bad")).map(|_| ()).unwrap_err();
        assert!(
            refused.message().contains("hangup"),
            "{}",
            refused.message()
        );
    }

    #[test]
    #[should_panic(expected = "the caller should hear \"Goodbye\"")]
    fn hearing_the_wrong_thing_fails_the_test() {
        reset();
        Call::<Probe>::start().hears("Goodbye");
    }

    #[test]
    fn requests_are_answered_from_the_script_and_recorded() {
        reset();
        let mut call = Call::<Probe>::start();
        call.press("fetch").hears("error denied by allowlist");
        respond("https://crm.example/", 200, "{}");
        let mut call = Call::<Probe>::start();
        call.press("fetch").hears("status 200");
        fail("https://crm.example/", http::Error::Timeout);
        let mut call = Call::<Probe>::start();
        call.press("fetch").hears("error timeout");
        assert_eq!(requests().len(), 3);
        assert_eq!(requests()[0].method, "GET");
    }

    #[test]
    fn the_key_value_store_keeps_the_hosts_limits() {
        reset();
        kv_quota(10);
        assert_eq!(crate::kv::set("k", "abcde"), Ok(()));
        assert_eq!(
            crate::kv::set("j", "12345"),
            Err(crate::kv::Error::QuotaExceeded(10))
        );
        assert_eq!(
            crate::kv::increment("k", 1),
            Err(crate::kv::Error::NotANumber)
        );
        assert_eq!(crate::kv::delete("k"), Ok(()));
        assert_eq!(crate::kv::increment("c", 2), Ok(2));
        assert_eq!(kv_get("c").as_deref(), Some("2"));
        let long = "k".repeat(257);
        assert_eq!(
            crate::kv::get(&long),
            Err(crate::kv::Error::KeyTooLong(257))
        );
    }
}
