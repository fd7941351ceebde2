//! The `ivr:app/secrets` import: values the operator set for the app (API
//! keys, passwords), read by name. Kept apart from `config`, never shown by
//! any API, and masked wherever guest text reaches a log line or a trace.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::EventCtx;
use crate::runtime::ivr::app::secrets;

/// The interfaces this capability provides, with the version it implements.
pub(crate) const PROVIDES: &[(&str, &str)] = &[("ivr:app/secrets", "0.3.0")];

/// Shortest secret value: shorter ones could not be masked in logs without
/// masking ordinary words.
pub const MIN_SECRET_BYTES: usize = 4;
/// Longest secret value.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Most secrets per app.
pub const MAX_SECRETS: usize = 256;

/// An app's secrets. Its `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AppSecrets {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl AppSecrets {
    /// Secrets from their values by name.
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self { values }
    }

    /// The values by name (for the registry writing the secrets file).
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The secret names.
    pub fn names(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }

    /// `text` with every secret value replaced by `[secret NAME]`; borrowed
    /// when it holds none.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (name, value) in &self.values {
            if !value.is_empty() && out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("[secret {name}]")));
            }
        }
        out
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Check a secret's name and value; the error never quotes the value.
pub fn validate_secret(name: &str, value: &str) -> Result<(), String> {
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        return Err(format!(
            "secret name {name:?}: use 1 to 128 letters, digits, `_`, `-` or `.`"
        ));
    }
    if value.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "secret {name:?}: the value is {} bytes; at least {MIN_SECRET_BYTES} (shorter values cannot be masked in logs)",
            value.len()
        ));
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "secret {name:?}: the value is {} bytes; at most {MAX_SECRET_BYTES}",
            value.len()
        ));
    }
    Ok(())
}

/// The secrets of the app an event runs.
#[derive(Default)]
pub(crate) struct SecretsImport {
    values: Arc<AppSecrets>,
}

impl SecretsImport {
    pub(crate) fn new(values: Arc<AppSecrets>) -> Self {
        Self { values }
    }
}

pub(crate) fn link(linker: &mut Linker<EventCtx>) -> wasmtime::Result<()> {
    secrets::add_to_linker::<EventCtx, HasSelf<SecretsImport>>(linker, |ctx| &mut ctx.secrets)
}

impl secrets::Host for SecretsImport {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.values.get(&key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_and_never_debug_printed() {
        let secrets = AppSecrets::new(BTreeMap::from([
            ("api_key".to_owned(), "k-12345".to_owned()),
            ("pin".to_owned(), "9876".to_owned()),
        ]));
        assert_eq!(
            secrets.mask("key=k-12345 pin 9876!"),
            "key=[secret api_key] pin [secret pin]!"
        );
        assert!(matches!(secrets.mask("nothing here"), Cow::Borrowed(_)));
        let debug = format!("{secrets:?}");
        assert!(
            !debug.contains("k-12345") && debug.contains("api_key"),
            "{debug}"
        );
    }

    #[test]
    fn names_and_sizes_are_checked_without_quoting_the_value() {
        assert_eq!(validate_secret("api_key", "long enough"), Ok(()));
        let err = validate_secret("api_key", "abc").unwrap_err();
        assert!(
            !err.contains("abc\"") && err.contains("at least 4"),
            "{err}"
        );
        assert!(validate_secret("bad name", "long enough").is_err());
        assert!(validate_secret("", "long enough").is_err());
    }
}
