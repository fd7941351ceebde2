//! Apps' secret values: one JSON file in the data directory, readable by
//! the host's user only (0600), replaced atomically on every change. Values
//! never leave the host through any API; only their names are listed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::files::write_atomic_private;

/// Secret values by app, then by name.
pub type SecretValues = BTreeMap<String, BTreeMap<String, String>>;

/// The secrets file (`DATA_DIR/secrets.json`).
#[derive(Debug, Clone)]
pub struct SecretFile {
    path: PathBuf,
}

impl SecretFile {
    /// The secrets file at `path`.
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    /// Every app's secrets (none when the file does not exist yet). A file
    /// others can read is made private again, with a warning.
    pub fn load(&self) -> anyhow::Result<SecretValues> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SecretValues::new());
            }
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", self.path.display()));
            }
        };
        self.keep_private()?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a secrets file", self.path.display()))
    }

    /// Replace the file with `values`.
    pub fn save(&self, values: &SecretValues) -> anyhow::Result<()> {
        let json = serde_json::to_vec(values).context("encoding the secrets")?;
        write_atomic_private(&self.path, &json)
    }

    fn keep_private(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(&self.path)
            .with_context(|| format!("reading the mode of {}", self.path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "{} was readable by other users; making it private (0600)",
                self.path.display()
            );
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} private", self.path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn secrets_round_trip_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = SecretFile::new(&dir.path().join("secrets.json"));
        assert!(file.load().unwrap().is_empty());
        let mut values = SecretValues::new();
        values
            .entry("bank".into())
            .or_default()
            .insert("api_key".into(), "s3cr3t-value".into());
        file.save(&values).unwrap();
        assert_eq!(file.load().unwrap(), values);
        let path = dir.path().join("secrets.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(file.load().unwrap(), values);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
