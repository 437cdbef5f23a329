//! The data directory: its lock, the shard count fixed at creation, the generated
//! secrets, and one log directory per shard.
//!
//! ```text
//! data/
//!   LOCK             held (flock) by the running server: a second one is refused
//!   boxoffice.json   {"format": 1, "shards": N}: written once, at creation
//!   admin_token      generated admin token (mode 0600) unless BOXOFFICE_ADMIN_TOKEN is set
//!   jwt_secret       generated HS256 key (mode 0600) unless BOXOFFICE_JWT_SECRET is set
//!   shard-000/       the write-ahead log and snapshots of shard 0
//!   ...
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::limits::SHARDS_MAX;

/// Errors preparing the data directory; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another server holds the lock.
    #[error(
        "{path} is locked: another boxoffice server is using this data directory \
         (stop it, or give another --data-dir)"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The directory is inconsistent or was created differently.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    shards: usize,
}

const META_FILE: &str = "boxoffice.json";
const META_FORMAT: u32 = 1;

/// An opened, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    shards: usize,
    /// Holds the lock for as long as the server runs.
    _lock: File,
}

impl DataDir {
    /// Opens (creating on first start) and locks `root`. `shards` is the count to create
    /// with; for an existing directory it must be `None` or equal to the recorded count.
    pub fn open(root: &Path, shards: Option<usize>) -> Result<Self, DataDirError> {
        fs::create_dir_all(root).map_err(io(root))?;
        let lock_path = root.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DataDirError::Locked { path: lock_path })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let meta_path = root.join(META_FILE);
        let recorded = match fs::read(&meta_path) {
            Ok(bytes) => {
                let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| {
                    DataDirError::Invalid(format!("{}: unreadable: {e}", meta_path.display()))
                })?;
                if meta.format != META_FORMAT {
                    return Err(DataDirError::Invalid(format!(
                        "{}: format {} is not supported (this build reads {META_FORMAT})",
                        meta_path.display(),
                        meta.format
                    )));
                }
                Some(meta.shards)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&meta_path)(e)),
        };
        let count = match (recorded, shards) {
            (Some(recorded), Some(asked)) if recorded != asked => {
                return Err(DataDirError::Invalid(format!(
                    "{} was created with {recorded} shards; --shards {asked} cannot change that",
                    root.display()
                )))
            }
            (Some(recorded), _) => recorded,
            (None, asked) => {
                let count = asked.unwrap_or_else(default_shards);
                if count == 0 || count > SHARDS_MAX {
                    return Err(DataDirError::Invalid(format!(
                        "--shards must be from 1 to {SHARDS_MAX}, not {count}"
                    )));
                }
                let bytes = serde_json::to_vec_pretty(&Meta {
                    format: META_FORMAT,
                    shards: count,
                })
                .expect("meta serializes");
                write_durably(root, META_FILE, &bytes, 0o644)?;
                count
            }
        };
        Ok(DataDir {
            root: root.to_path_buf(),
            shards: count,
            _lock: lock,
        })
    }

    /// The shard count.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The log directory of shard `index`.
    pub fn shard_dir(&self, index: usize) -> PathBuf {
        shard_dir(&self.root, index)
    }

    /// The secret named `name` (`admin_token` or `jwt_secret`): `given` if set (from the
    /// environment), else the file, else a new random one written with mode 0600.
    /// The bool says whether it was generated now.
    pub fn secret(&self, name: &str, given: Option<&str>) -> Result<(String, bool), DataDirError> {
        if let Some(value) = given.filter(|v| !v.is_empty()) {
            return Ok((value.to_string(), false));
        }
        read_or_create_secret(&self.root, name)
    }
}

/// The log directory of shard `index` under `root`.
pub fn shard_dir(root: &Path, index: usize) -> PathBuf {
    root.join(format!("shard-{index:03}"))
}

/// The shard count recorded in `root`, without locking (for `wal verify|dump`).
pub fn recorded_shards(root: &Path) -> Result<usize, DataDirError> {
    let meta_path = root.join(META_FILE);
    let bytes = fs::read(&meta_path).map_err(io(&meta_path))?;
    let meta: Meta = serde_json::from_slice(&bytes)
        .map_err(|e| DataDirError::Invalid(format!("{}: unreadable: {e}", meta_path.display())))?;
    Ok(meta.shards)
}

/// Reads the secret file `name` in `root`, creating it (0600) with 32 random bytes in hex.
pub fn read_or_create_secret(root: &Path, name: &str) -> Result<(String, bool), DataDirError> {
    let path = root.join(name);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    fs::create_dir_all(root).map_err(io(root))?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let value: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    write_durably(root, name, value.as_bytes(), 0o600)?;
    Ok((value, true))
}

/// Writes `root/name` through a temporary file, fsync, rename and directory fsync.
fn write_durably(root: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), DataDirError> {
    let tmp = root.join(format!("{name}.tmp"));
    let path = root.join(name);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io(root))?;
    Ok(())
}

/// One shard per core, at most 8: each shard is one thread plus its fsyncs.
fn default_shards() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path(), Some(2)).unwrap();
        let second = DataDir::open(dir.path(), None).unwrap_err();
        assert!(matches!(second, DataDirError::Locked { .. }), "{second}");
        drop(first);
        assert_eq!(DataDir::open(dir.path(), None).unwrap().shards(), 2);
    }

    #[test]
    fn the_shard_count_is_fixed_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), Some(3)).unwrap());
        let err = DataDir::open(dir.path(), Some(4)).unwrap_err();
        assert!(err.to_string().contains("created with 3 shards"), "{err}");
    }

    #[test]
    fn generated_secrets_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), Some(1)).unwrap();
        let (first, generated) = data.secret("admin_token", None).unwrap();
        assert!(generated);
        let mode = fs::metadata(dir.path().join("admin_token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(data.secret("admin_token", None).unwrap(), (first, false));
        assert_eq!(
            data.secret("admin_token", Some("given")).unwrap().0,
            "given"
        );
    }
}
