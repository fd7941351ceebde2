//! The 8x8 CPaaS Voice wire protocol: inbound webhooks, the callflow reply
//! and the rules a reply must follow. Knows nothing about WebAssembly or
//! HTTP; `ivr-host` re-exports it as `ivr_host::protocol`.
//!
//! A crate of its own so that it (and what depends only on it, like the
//! benchmarks' native server) compiles beside wasmtime rather than after it.

pub mod callflow;
pub mod event;
pub mod summary;
pub mod validate;

pub use callflow::{Action, Callflow};
pub use event::{
    CallAction, CallDirection, CallStatus, CallType, EventType, ParseError, Webhook, parse_webhook,
};
pub use validate::{ReplyLimits, Violation, check_size, validate};
