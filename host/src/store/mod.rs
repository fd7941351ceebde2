//! Where the host keeps what outlives one event: metadata in SQLite,
//! component files, and (in memory) per-call state and the replies already
//! given.

pub mod call_state;
pub mod db;
pub mod files;
pub mod recent;
pub mod replies;
pub mod sessions;

pub use call_state::CallStateStore;
pub use replies::ReplyCache;
