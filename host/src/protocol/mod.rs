//! The 8x8 CPaaS Voice wire protocol: inbound webhooks, the callflow reply
//! and the rules a reply must follow. Knows nothing about WebAssembly.

pub mod api;
pub mod callflow;
pub mod event;
pub mod summary;
pub mod validate;

pub use callflow::{Action, Callflow};
pub use event::{
    CallAction, CallDirection, CallStatus, CallType, EventType, ParseError, Webhook, parse_webhook,
};
pub use validate::{ReplyLimits, Violation, check_size, validate};
