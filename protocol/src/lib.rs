//! The 8x8 CPaaS Voice wire protocol: inbound webhooks, the callflow reply
//! and the rules a reply must follow. Knows nothing about WebAssembly or
//! HTTP; `ivr-host` re-exports it as `ivr_host::protocol`.
//!
//! A crate of its own so that it (and what depends only on it, like the
//! benchmarks' native server) compiles beside wasmtime rather than after it.

//!
//! Guests need only [`rules`]: with default features off (no `wire`) the
//! crate is that module alone, without serde.

pub mod rules;

#[cfg(feature = "wire")]
pub mod callflow;
#[cfg(feature = "wire")]
pub mod event;
#[cfg(feature = "wire")]
mod lenient;
#[cfg(feature = "wire")]
pub mod summary;
#[cfg(feature = "wire")]
pub mod validate;

#[cfg(feature = "wire")]
pub use callflow::{Action, Callflow};
#[cfg(feature = "wire")]
pub use event::{
    CallAction, CallDirection, CallStatus, CallType, EventType, ParseError, Webhook, parse_webhook,
};
#[cfg(feature = "wire")]
pub use validate::{ReplyLimits, Violation, check_size, validate};
