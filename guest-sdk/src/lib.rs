//! Write IVR apps for [ivr-host](https://example.invalid/ivr-host) in Rust.
//!
//! An app is a type implementing [`IvrApp`]: one method that turns a typed
//! 8x8 call event into a [`Reply`] (the callflow 8x8 runs next). Export it with
//! [`export!`] and build the crate for `wasm32-wasip2`; the result is a
//! WebAssembly component the host can run.
//!
//! ```no_run
//! use ivr_sdk::{CallEvent, Error, IvrApp, Reply};
//!
//! struct Hello;
//!
//! impl IvrApp for Hello {
//!     fn handle_call(_event: &CallEvent) -> Result<Reply, Error> {
//!         Ok(Reply::new().say("Hello from ivr-host. Goodbye!").hangup())
//!     }
//! }
//!
//! ivr_sdk::export!(Hello);
//! ```
//!
//! The crate needs `crate-type = ["cdylib"]` in its `Cargo.toml`; then
//! `cargo build --release --target wasm32-wasip2` writes the component to
//! `target/wasm32-wasip2/release/NAME.wasm`.
//!
//! Between two events of one call, an app keeps what it needs in the
//! call's [`state`] (or in the reply's `client_action_id`, which 8x8 echoes
//! back); across calls, in its [`kv`] store. Operator settings come from
//! [`config`], keys and passwords from [`secrets`]; diagnostics go to
//! [`log`]. [`http`] reaches the backends the operator allows.
//!
//! Test an app with plain `cargo test`, natively: [`testing`] runs its
//! handler through whole calls with every import served in memory.

mod actions;
mod event;
pub mod http;
pub mod kv;
mod reply;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use actions::{Action, DEFAULT_VOICE, MakeCall, PlayFile, Say, SayAndCapture};
pub use event::{CallDirection, CallEvent, CallStatus, CallType};
pub use reply::{Error, Reply};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "ivr-app",
        path: "../wit",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_ivr_app_world",
        default_bindings_module: "ivr_sdk::bindings",
    });
}

use bindings::ivr::app::types as wit;

/// An IVR app: decides the next step of a call from each 8x8 event.
///
/// The host runs every event on a fresh instance, so an implementation keeps
/// nothing in statics between events; use [`state`] or the reply's
/// `client_action_id` instead.
///
/// ```
/// use ivr_sdk::{CallEvent, Error, IvrApp, Reply};
///
/// struct Echo;
///
/// impl IvrApp for Echo {
///     fn handle_call(event: &CallEvent) -> Result<Reply, Error> {
///         match event.dtmf() {
///             Some(digits) => Ok(Reply::new().say(format!("You pressed {digits}.")).hangup()),
///             None => Err(Error::new("no digits")),
///         }
///     }
/// }
/// # let _ = Echo;
/// ```
pub trait IvrApp {
    /// Answer one Voice Call Action event with the callflow to run next.
    ///
    /// Returning `Err` makes the host answer with the app's fallback callflow
    /// (by default an apology and hangup) and record the message.
    fn handle_call(event: &CallEvent) -> Result<Reply, Error>;

    /// Hear how a call ended: called once per call with 8x8's session
    /// summary, on the version that answered the call, with the call's
    /// [`state`] still readable. The default does nothing.
    ///
    /// ```
    /// use ivr_sdk::{CallEvent, Error, IvrApp, Reply, SessionSummary};
    ///
    /// struct Logged;
    ///
    /// impl IvrApp for Logged {
    ///     fn handle_call(_event: &CallEvent) -> Result<Reply, Error> {
    ///         Ok(Reply::new().hangup())
    ///     }
    ///     fn session_ended(summary: &SessionSummary) {
    ///         if summary.session_status != "COMPLETED" {
    ///             ivr_sdk::log::warn(&format!("call {} ended {}", summary.session_id, summary.session_status));
    ///         }
    ///     }
    /// }
    /// # let _ = Logged;
    /// ```
    fn session_ended(summary: &SessionSummary) {
        let _ = summary;
    }
}

/// The Voice Session Summary of a finished call: status, times, last
/// action, error code, legs.
///
/// ```
/// fn failed(summary: &ivr_sdk::SessionSummary) -> bool {
///     summary.session_status == "ERROR" || summary.error_code.is_some()
/// }
/// # let _ = failed;
/// ```
pub type SessionSummary = wit::SessionSummary;

/// Connects an [`IvrApp`] type to the generated WIT bindings; used by [`export!`].
#[doc(hidden)]
pub struct Adapter<A>(core::marker::PhantomData<A>);

impl<A: IvrApp> bindings::Guest for Adapter<A> {
    fn handle_call_action(event: wit::CallEvent) -> Result<wit::Reply, wit::AppError> {
        let event = CallEvent::from_wit(event);
        A::handle_call(&event)
            .map(Reply::into_wit)
            .map_err(Error::into_wit)
    }

    fn handle_session_summary(summary: wit::SessionSummary) {
        A::session_ended(&summary);
    }
}

/// Export an [`IvrApp`] type as the component's entry point. Use it once per
/// crate, at the top level.
///
/// ```no_run
/// use ivr_sdk::{CallEvent, Error, IvrApp, Reply};
///
/// struct Goodbye;
///
/// impl IvrApp for Goodbye {
///     fn handle_call(_event: &CallEvent) -> Result<Reply, Error> {
///         Ok(Reply::new().hangup())
///     }
/// }
///
/// ivr_sdk::export!(Goodbye);
/// ```
#[macro_export]
macro_rules! export {
    ($app:ty) => {
        #[doc(hidden)]
        type __IvrSdkExportedApp = $crate::Adapter<$app>;
        $crate::bindings::__export_ivr_app_world!(__IvrSdkExportedApp with_types_in $crate::bindings);
    };
}

/// Per-call state: string values kept by the host between the events of one
/// call, never visible to another call.
///
/// Changes made while handling an event are kept only when the app returns a
/// reply; after an error or a trap the call's state is as it was before.
///
/// ```no_run
/// let visits: u32 = ivr_sdk::state::get("visits").and_then(|v| v.parse().ok()).unwrap_or(0);
/// ivr_sdk::state::set("visits", &(visits + 1).to_string());
/// ivr_sdk::state::delete("account");
/// ```
pub mod state {
    #[cfg(target_arch = "wasm32")]
    use crate::bindings::ivr::app::state as host;

    /// The value stored under `key` for this call, if any.
    ///
    /// ```no_run
    /// let account = ivr_sdk::state::get("account");
    /// ```
    pub fn get(key: &str) -> Option<String> {
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|env| env.state.get(key).cloned());
        #[cfg(target_arch = "wasm32")]
        host::get(key)
    }

    /// Store `value` under `key` for this call.
    ///
    /// ```no_run
    /// ivr_sdk::state::set("account", "12345678");
    /// ```
    pub fn set(key: &str, value: &str) {
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|env| {
            env.state.insert(key.to_owned(), value.to_owned());
        });
        #[cfg(target_arch = "wasm32")]
        host::set(key, value)
    }

    /// Remove `key` for this call.
    ///
    /// ```no_run
    /// ivr_sdk::state::delete("account");
    /// ```
    pub fn delete(key: &str) {
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|env| {
            env.state.remove(key);
        });
        #[cfg(target_arch = "wasm32")]
        host::delete(key)
    }
}

/// The app's configuration values, set by the operator
/// (`ivr-host serve --app-config NAME.KEY=VALUE`).
///
/// ```no_run
/// let agent = ivr_sdk::config::get("agent_number").unwrap_or_default();
/// ```
pub mod config {
    /// The value configured for `key`, if any.
    ///
    /// ```no_run
    /// if let Some(number) = ivr_sdk::config::get("agent_number") {
    ///     ivr_sdk::log::info(&format!("transferring to {number}"));
    /// }
    /// ```
    pub fn get(key: &str) -> Option<String> {
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|env| env.config.get(key).cloned());
        #[cfg(target_arch = "wasm32")]
        crate::bindings::ivr::app::config::get(key)
    }
}

/// Secret values the operator set for the app (`ivr-host secrets set APP
/// KEY`): API keys, passwords. The host masks them in the app's log lines
/// and in traces.
///
/// ```no_run
/// let key = ivr_sdk::secrets::get("api_key").unwrap_or_default();
/// ```
pub mod secrets {
    /// The secret named `key`, if the operator set one.
    ///
    /// ```no_run
    /// if let Some(key) = ivr_sdk::secrets::get("api_key") {
    ///     // send it in an Authorization header, never in a log line
    /// #   let _ = key;
    /// }
    /// ```
    pub fn get(key: &str) -> Option<String> {
        #[cfg(not(target_arch = "wasm32"))]
        return crate::testing::with(|env| env.secrets.get(key).cloned());
        #[cfg(target_arch = "wasm32")]
        crate::bindings::ivr::app::secrets::get(key)
    }
}

/// Log lines in the host's log, tagged with the app, its version and the call.
///
/// ```no_run
/// ivr_sdk::log::info("main menu");
/// ivr_sdk::log::warn(&format!("unexpected digits {:?}", "9"));
/// ```
pub mod log {
    use crate::wit::Level;

    fn log(level: Level, message: &str) {
        #[cfg(not(target_arch = "wasm32"))]
        crate::testing::log(level, message);
        #[cfg(target_arch = "wasm32")]
        crate::bindings::ivr::app::log::log(level, message);
    }

    /// Log at trace level.
    ///
    /// ```no_run
    /// ivr_sdk::log::trace("entering handler");
    /// ```
    pub fn trace(message: &str) {
        log(Level::Trace, message)
    }

    /// Log at debug level.
    ///
    /// ```no_run
    /// ivr_sdk::log::debug("state loaded");
    /// ```
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }

    /// Log at info level.
    ///
    /// ```no_run
    /// ivr_sdk::log::info("caller chose the balance");
    /// ```
    pub fn info(message: &str) {
        log(Level::Info, message)
    }

    /// Log at warn level.
    ///
    /// ```no_run
    /// ivr_sdk::log::warn("agent_number is not configured");
    /// ```
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }

    /// Log at error level.
    ///
    /// ```no_run
    /// ivr_sdk::log::error("could not parse the account number");
    /// ```
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}
