//! The app's answer to an event, and its error type.

use crate::actions::{Action, Say, SayAndCapture};
use crate::wit;

/// The callflow 8x8 runs next, plus an optional `client_action_id` that 8x8
/// echoes back in the call's next event.
///
/// The host checks every reply against 8x8's rules before it leaves (at
/// least one action; `hangup` and `sayAndCapture` only last; at most two
/// `makeCall`; texts up to 3000 characters; ...). A reply that breaks one is
/// replaced by the app's fallback callflow.
///
/// ```
/// use ivr_sdk::{Reply, SayAndCapture};
/// let menu = Reply::new()
///     .client_action_id("main")
///     .say("Welcome.")
///     .capture(SayAndCapture::new("Press 1 for sales, 2 for support."));
/// assert_eq!(menu.actions.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Echoed back by 8x8 in the next event of this call.
    pub client_action_id: Option<String>,
    /// The steps 8x8 runs, in order.
    pub actions: Vec<Action>,
}

impl Reply {
    /// An empty reply; add at least one action.
    ///
    /// ```
    /// let reply = ivr_sdk::Reply::new().hangup();
    /// assert_eq!(reply.actions, vec![ivr_sdk::Action::Hangup]);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the id 8x8 echoes back in the next event (e.g. the menu position).
    ///
    /// ```
    /// let reply = ivr_sdk::Reply::new().client_action_id("main").hangup();
    /// assert_eq!(reply.client_action_id.as_deref(), Some("main"));
    /// ```
    pub fn client_action_id(mut self, id: impl Into<String>) -> Self {
        self.client_action_id = Some(id.into());
        self
    }

    /// Append any action.
    ///
    /// ```
    /// use ivr_sdk::{MakeCall, Reply};
    /// let reply = Reply::new().then(MakeCall::new("+6561115777", "+6512345678"));
    /// assert_eq!(reply.actions.len(), 1);
    /// ```
    pub fn then(mut self, action: impl Into<Action>) -> Self {
        self.actions.push(action.into());
        self
    }

    /// Append a `say` of `text` in the default voice.
    ///
    /// ```
    /// let reply = ivr_sdk::Reply::new().say("Goodbye.").hangup();
    /// assert_eq!(reply.actions.len(), 2);
    /// ```
    pub fn say(self, text: impl Into<String>) -> Self {
        self.then(Say::new(text))
    }

    /// Append a `sayAndCapture`; it must be the last action.
    ///
    /// ```
    /// let reply = ivr_sdk::Reply::new().capture(ivr_sdk::SayAndCapture::new("Press 1."));
    /// assert_eq!(reply.actions.len(), 1);
    /// ```
    pub fn capture(self, capture: SayAndCapture) -> Self {
        self.then(capture)
    }

    /// Append a `hangup`; it must be the last action.
    ///
    /// ```
    /// let reply = ivr_sdk::Reply::new().hangup();
    /// assert_eq!(reply.actions, vec![ivr_sdk::Action::Hangup]);
    /// ```
    pub fn hangup(self) -> Self {
        self.then(Action::Hangup)
    }

    pub(crate) fn into_wit(self) -> wit::Reply {
        wit::Reply {
            client_action_id: self.client_action_id,
            actions: self.actions.into_iter().map(Action::into_wit).collect(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Reply {
    /// Check the reply against the rules the host applies before it leaves
    /// (the same code, from `ivr-protocol`, with the host's default limits):
    /// the rule broken, if any. Native only (for tests).
    ///
    /// ```
    /// use ivr_sdk::Reply;
    /// assert!(Reply::new().say("Hello.").hangup().check().is_ok());
    /// let err = Reply::new().hangup().say("After the hangup.").check().unwrap_err();
    /// assert!(err.contains("hangup"), "{err}");
    /// ```
    pub fn check(&self) -> Result<(), String> {
        use ivr_protocol::callflow as wire;
        let callflow = wire::Callflow {
            client_action_id: self.client_action_id.clone(),
            callflow: self
                .actions
                .iter()
                .map(|action| match action.clone() {
                    Action::MakeCall(a) => wire::Action::MakeCall(wire::MakeCall {
                        source: a.source,
                        destination: a.destination,
                        call_recording: a.call_recording,
                    }),
                    Action::Say(a) => wire::Action::Say(wire::Say {
                        text: a.text,
                        voice_profile: a.voice_profile,
                        repetition: a.repetition,
                        speed: a.speed,
                        language: a.language,
                    }),
                    Action::SayAndCapture(a) => wire::Action::SayAndCapture(wire::SayAndCapture {
                        prompt_message: a.prompt_message,
                        voice_profile: a.voice_profile,
                        speed: a.speed,
                        repetition: a.repetition,
                        min_digits: Some(a.min_digits),
                        max_digits: Some(a.max_digits),
                        digit_timeout: Some(a.digit_timeout_ms),
                        overall_timeout: Some(a.overall_timeout_ms),
                        complete_on_hash: Some(a.complete_on_hash),
                        no_of_tries: Some(a.no_of_tries),
                        success_message: a.success_message,
                        failure_message: a.failure_message,
                    }),
                    Action::PlayFile(a) => wire::Action::PlayFile(wire::PlayFile {
                        file_url: a.file_url,
                        repetition: a.repetition,
                    }),
                    Action::Hangup => wire::Action::Hangup,
                })
                .collect(),
        };
        let limits = ivr_protocol::ReplyLimits::default();
        ivr_protocol::validate(&callflow, &limits).map_err(|rule| rule.to_string())?;
        ivr_protocol::check_size(&callflow.to_json(), &limits).map_err(|rule| rule.to_string())
    }
}

impl From<Action> for Reply {
    fn from(action: Action) -> Self {
        Reply::new().then(action)
    }
}

/// An app's own failure: the host answers with the fallback callflow and
/// records the message.
///
/// ```
/// let err = ivr_sdk::Error::new("account service unavailable");
/// assert_eq!(err.message(), "account service unavailable");
/// let parsed: Result<u32, ivr_sdk::Error> = "12x".parse::<u32>().map_err(Into::into);
/// assert_eq!(parsed.unwrap_err().to_string(), "invalid digit found in string");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with `message`.
    ///
    /// ```
    /// let err = ivr_sdk::Error::new("no route");
    /// assert_eq!(err.message(), "no route");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    ///
    /// ```
    /// assert_eq!(ivr_sdk::Error::new("x").message(), "x");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn into_wit(self) -> wit::AppError {
        wit::AppError {
            message: self.message,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any error converts, so `?` works on every fallible call in a handler
/// (`digits.parse::<u32>()?`, `kv::get(k)?`, `http::get(url)?`); the
/// message is the error's text. (So `Error` itself is not a
/// `std::error::Error`, as with `anyhow::Error`; for a message of your
/// own, [`Error::new`].)
///
/// ```
/// fn account(digits: &str) -> Result<u32, ivr_sdk::Error> {
///     Ok(digits.trim_end_matches('#').parse::<u32>()?)
/// }
/// assert_eq!(account("1234#"), Ok(1234));
/// assert_eq!(account("12a#").unwrap_err().message(), "invalid digit found in string");
/// ```
impl<E: std::error::Error> From<E> for Error {
    fn from(err: E) -> Self {
        Self::new(err.to_string())
    }
}
