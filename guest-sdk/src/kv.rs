//! The app's key-value store: kept across calls and restarts, shared by all
//! of the app's calls and never by another app's. A write takes effect at
//! once: the next read, in any call, sees it. Keys are at most 256 bytes,
//! values at most 64 KiB; the operator sets the app's quota (16 MiB by
//! default). Every failure is an [`Error`] the app can answer around.
//!
//! ```no_run
//! let calls = ivr_sdk::kv::increment("calls:+6591234567", 1)?;
//! if calls > 1 {
//!     // "Welcome back"
//! }
//! ivr_sdk::kv::set_with_ttl("language:+6591234567", "fr", 30 * 24 * 3600)?;
//! # Ok::<(), ivr_sdk::kv::Error>(())
//! ```

use crate::bindings::ivr::app::kv as host;

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The key is longer than 256 bytes (its length).
    KeyTooLong(u32),
    /// The value is larger than 64 KiB (its length).
    ValueTooLarge(u32),
    /// The write would take the app over its quota (the quota, in bytes).
    QuotaExceeded(u64),
    /// `increment` found a value that is not a 64-bit integer.
    NotANumber,
    /// The store could not be reached; retrying later may work.
    Unavailable(String),
}

impl From<host::Error> for Error {
    fn from(err: host::Error) -> Self {
        match err {
            host::Error::KeyTooLong(len) => Error::KeyTooLong(len),
            host::Error::ValueTooLarge(len) => Error::ValueTooLarge(len),
            host::Error::QuotaExceeded(quota) => Error::QuotaExceeded(quota),
            host::Error::NotANumber => Error::NotANumber,
            host::Error::Unavailable(why) => Error::Unavailable(why),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::KeyTooLong(len) => write!(f, "the key is {len} bytes; at most 256"),
            Error::ValueTooLarge(len) => write!(f, "the value is {len} bytes; at most 65536"),
            Error::QuotaExceeded(quota) => write!(f, "the app's {quota}-byte quota is used up"),
            Error::NotANumber => f.write_str("the value is not a 64-bit integer"),
            Error::Unavailable(why) => write!(f, "the key-value store is unavailable: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The value of `key`, if set and not expired.
///
/// ```no_run
/// let language = ivr_sdk::kv::get("language:+6591234567")?.unwrap_or_else(|| "en".into());
/// # Ok::<(), ivr_sdk::kv::Error>(())
/// ```
pub fn get(key: &str) -> Result<Option<String>, Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv::get(key);
    #[cfg(target_arch = "wasm32")]
    Ok(host::get(key)?)
}

/// Set `key` to `value`, kept until deleted.
///
/// ```no_run
/// ivr_sdk::kv::set("greeting", "Welcome to Acme Bank")?;
/// # Ok::<(), ivr_sdk::kv::Error>(())
/// ```
pub fn set(key: &str, value: &str) -> Result<(), Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv::set(key, value, None);
    #[cfg(target_arch = "wasm32")]
    Ok(host::set(key, value, None)?)
}

/// Set `key` to `value`, forgotten after `ttl_seconds`.
///
/// ```no_run
/// ivr_sdk::kv::set_with_ttl("otp:+6591234567", "482913", 300)?;
/// # Ok::<(), ivr_sdk::kv::Error>(())
/// ```
pub fn set_with_ttl(key: &str, value: &str, ttl_seconds: u32) -> Result<(), Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv::set(key, value, Some(ttl_seconds));
    #[cfg(target_arch = "wasm32")]
    Ok(host::set(key, value, Some(ttl_seconds))?)
}

/// Remove `key` (nothing happens if it is not set).
///
/// ```no_run
/// ivr_sdk::kv::delete("otp:+6591234567")?;
/// # Ok::<(), ivr_sdk::kv::Error>(())
/// ```
pub fn delete(key: &str) -> Result<(), Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv::delete(key);
    #[cfg(target_arch = "wasm32")]
    Ok(host::delete(key)?)
}

/// Add `delta` to the integer at `key` (unset counts as 0) and return the
/// new value; the key keeps its expiry.
///
/// ```no_run
/// let visits = ivr_sdk::kv::increment("visits", 1)?;
/// # Ok::<(), ivr_sdk::kv::Error>(())
/// ```
pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv::increment(key, delta);
    #[cfg(target_arch = "wasm32")]
    Ok(host::increment(key, delta)?)
}
