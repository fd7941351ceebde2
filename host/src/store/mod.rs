//! Where the host keeps what outlives one event: per-call state and the
//! replies already given (in memory for now).

pub mod call_state;
pub mod replies;

pub use call_state::CallStateStore;
pub use replies::ReplyCache;
