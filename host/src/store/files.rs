//! Durable files: written atomically (temp file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old file or the whole new one.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

/// Write `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with_mode(path, bytes, 0o644)
}

/// Like [`write_atomic`], readable and writable by the owner only (0600)
/// from the moment the file exists.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with_mode(path, bytes, 0o600)
}

fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().context("a file path without a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsync a directory, making a rename in it durable.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Content-addressed component files: `DIR/<sha256>.wasm`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// Blobs under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// Store `bytes` under their sha256 (durable once this returns).
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(sha256);
        if path.exists()
            && fs::metadata(&path)
                .map(|m| m.len() == bytes.len() as u64)
                .unwrap_or(false)
        {
            return Ok(());
        }
        write_atomic(&path, bytes)
    }

    /// Read a component back, checking it still has its hash.
    pub fn get(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.path(sha256);
        let bytes =
            fs::read(&path).with_context(|| format!("reading component {}", path.display()))?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            anyhow::bail!(
                "component {} is corrupt: its sha256 is {actual}",
                path.display()
            );
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path().join("components"));
        let sha = sha256_hex(b"component");
        blobs.put(&sha, b"component").unwrap();
        assert_eq!(blobs.get(&sha).unwrap(), b"component");
        std::fs::write(
            dir.path().join("components").join(format!("{sha}.wasm")),
            b"tampered!",
        )
        .unwrap();
        assert!(blobs.get(&sha).unwrap_err().to_string().contains("corrupt"));
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("file");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }
}

/// Compiled code kept across restarts: `DIR/<engine key>/<sha256>.cwasm`,
/// each with a seal (`.cwasm.sha256`, its own hash) written after it, so a
/// torn or altered artifact is never handed back.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// The cache under `root` for the engine named `engine_key`.
    pub fn new(root: &Path, engine_key: &str) -> Self {
        Self {
            dir: root.join(engine_key),
        }
    }

    /// The artifact of component `sha256`, if one was written whole and
    /// matches its seal. Any problem is a miss (logged), never an error.
    pub fn get(&self, sha256: &str) -> Option<Vec<u8>> {
        let artifact = self.dir.join(format!("{sha256}.cwasm"));
        let seal = self.dir.join(format!("{sha256}.cwasm.sha256"));
        let (bytes, expected) = match (fs::read(&artifact), fs::read_to_string(&seal)) {
            (Ok(bytes), Ok(expected)) => (bytes, expected),
            _ => return None,
        };
        if sha256_hex(&bytes) != expected.trim() {
            tracing::warn!(artifact = %artifact.display(), "compiled artifact does not match its seal; recompiling");
            return None;
        }
        Some(bytes)
    }

    /// Keep the artifact of component `sha256` (atomically, then its seal).
    pub fn put(&self, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.dir.join(format!("{sha256}.cwasm")), bytes)?;
        write_atomic(
            &self.dir.join(format!("{sha256}.cwasm.sha256")),
            sha256_hex(bytes).as_bytes(),
        )
    }
}
