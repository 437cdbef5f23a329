//! The data directory: its lock, the shard count and the mode fixed at creation, the
//! generated secrets, and one log directory per shard.
//!
//! ```text
//! data/
//!   LOCK             the PID of the running server (the lock itself is a flock of the
//!                    directory, so deleting this file does not let a second server in)
//!   boxoffice.json   {"format": 1, "shards": N, "mode": "single" | "cluster"}: written at
//!                    creation
//!   admin_token      generated admin token (mode 0600) unless BOXOFFICE_ADMIN_TOKEN is set
//!   jwt_secret       generated HS256 key (mode 0600) unless BOXOFFICE_JWT_SECRET is set
//!   shard-000/       single node: the write-ahead log and snapshots of shard 0
//!   shard-0/         cluster node: shard 0's Raft log (raft-log/) and snapshots
//!   ...
//! ```
//!
//! The mode says which server the directory belongs to: a single-node server and a
//! cluster node refuse each other's directories. A `boxoffice.json` written before the
//! mode was recorded has no `mode`; it is then inferred from what the directory holds (a
//! Raft log: a cluster node's; a shard log with history: a single node's; neither: unused,
//! and whichever opens it first records its own) and recorded.

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
    /// Another server holds the lock on the directory.
    #[error(
        "{path} is locked: another boxoffice server uses it ({holder}); stop it, or \
         give another --data-dir"
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// Who holds it, as far as can be told ("PID 1234").
        holder: String,
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

/// Which server a data directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `boxoffice serve` (one node, its own logs).
    Single,
    /// `boxoffice serve --cluster FILE --node-id N` (a node of a cluster).
    Cluster,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    shards: usize,
    /// Absent in directories written before it was recorded (then inferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<Mode>,
}

const META_FILE: &str = "boxoffice.json";
const META_FORMAT: u32 = 1;
/// The record of the holder's PID (the exclusion itself is the directory's flock).
const LOCK_FILE: &str = "LOCK";

/// An opened, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    shards: usize,
    /// The directory itself, flocked for as long as the server runs: unlinking a file
    /// cannot undo this lock.
    _dir_lock: File,
    /// `LOCK`, flocked too, so that a server of an older release (which locked only
    /// this file) and this one exclude each other during an upgrade.
    _file_lock: File,
}

impl DataDir {
    /// Opens (creating on first start) and locks `root` for a server of `mode`. `shards`
    /// is the count to create with; for an existing directory it must be `None` or equal
    /// to the recorded count.
    ///
    /// Refused, with nothing written: a directory another server holds; a directory of the
    /// other mode; a directory with metadata in which a shard's log directory is missing
    /// or empty while another shard has history; shard logs without the metadata that says
    /// how events route to them.
    pub fn open(root: &Path, shards: Option<usize>, mode: Mode) -> Result<Self, DataDirError> {
        fs::create_dir_all(root).map_err(io(root))?;
        let dir_lock = lock_dir(root)?;
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
                Some(meta)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&meta_path)(e)),
        };
        // The mode is checked first: a directory of the other mode is refused as such,
        // whatever else differs.
        let recorded_mode = match &recorded {
            Some(Meta {
                mode: Some(mode), ..
            }) => Some(*mode),
            Some(meta) => infer_mode(root, meta.shards)?,
            None => None,
        };
        if let Some(recorded_mode) = recorded_mode.filter(|m| *m != mode) {
            return Err(wrong_mode(root, recorded_mode));
        }
        let needs_writing = recorded.as_ref().is_none_or(|m| m.mode.is_none());
        let recorded = recorded.map(|m| m.shards);
        let count = match (recorded, shards) {
            (Some(recorded), Some(asked)) if recorded != asked => {
                return Err(DataDirError::Invalid(format!(
                    "{} was created with {recorded} shards; --shards {asked} cannot change that",
                    root.display()
                )))
            }
            (Some(recorded), _) => {
                if mode == Mode::Single {
                    check_shards_present(root, recorded)?;
                }
                recorded
            }
            (None, asked) => {
                let count = asked.unwrap_or_else(default_shards);
                if count == 0 || count > SHARDS_MAX {
                    return Err(DataDirError::Invalid(format!(
                        "--shards must be from 1 to {SHARDS_MAX}, not {count}"
                    )));
                }
                refuse_orphan_shards(root)?;
                count
            }
        };
        let file_lock = lock_file(root)?;
        // Written at creation, and once more to record the mode of a directory written
        // before it was recorded.
        if needs_writing {
            let bytes = serde_json::to_vec_pretty(&Meta {
                format: META_FORMAT,
                shards: count,
                mode: Some(mode),
            })
            .expect("meta serializes");
            write_durably(root, META_FILE, &bytes, 0o644)?;
        }
        Ok(DataDir {
            root: root.to_path_buf(),
            shards: count,
            _dir_lock: dir_lock,
            _file_lock: file_lock,
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

/// The Raft log of shard `index` of a cluster node's data directory `root` (the cluster's
/// node opens its shards under `shard-<n>/`, see `raft::ClusterNode::start`).
fn raft_log_dir(root: &Path, index: usize) -> PathBuf {
    root.join(format!("shard-{index}")).join("raft-log")
}

/// The mode of a directory whose metadata does not record it: a cluster node's if a shard
/// has a Raft log, a single node's if a shard log has history, `None` if neither (unused).
fn infer_mode(root: &Path, shards: usize) -> Result<Option<Mode>, DataDirError> {
    let cluster = (0..shards).any(|index| raft_log_dir(root, index).exists());
    let mut single = false;
    for index in 0..shards {
        let dir = shard_dir(root, index);
        single |= matches!(
            wal::presence(&dir).map_err(io(&dir))?,
            wal::Presence::History
        );
    }
    match (cluster, single) {
        (true, true) => Err(DataDirError::Invalid(format!(
            "{} holds both a cluster node's Raft logs and a single-node server's logs, and \
             its {META_FILE} does not say which it is: move one of them away",
            root.display()
        ))),
        (true, false) => Ok(Some(Mode::Cluster)),
        (false, true) => Ok(Some(Mode::Single)),
        (false, false) => Ok(None),
    }
}

/// The refusal of a directory that belongs to a server of `recorded` mode.
fn wrong_mode(root: &Path, recorded: Mode) -> DataDirError {
    DataDirError::Invalid(match recorded {
        Mode::Cluster => format!(
            "{} holds a cluster node's data: start it with --cluster FILE --node-id N",
            root.display()
        ),
        Mode::Single => format!(
            "{} holds a single-node server's data: a cluster node does not start on it \
             (start it without --cluster, or give the node a new data directory)",
            root.display()
        ),
    })
}

/// The shard count recorded in `root`, without locking (for `wal verify|dump`).
pub fn recorded_shards(root: &Path) -> Result<usize, DataDirError> {
    let meta_path = root.join(META_FILE);
    let bytes = fs::read(&meta_path).map_err(io(&meta_path))?;
    let meta: Meta = serde_json::from_slice(&bytes)
        .map_err(|e| DataDirError::Invalid(format!("{}: unreadable: {e}", meta_path.display())))?;
    Ok(meta.shards)
}

/// Takes the flock of the directory `root` itself (an fd opened `O_RDONLY|O_DIRECTORY`)
/// and checks that it is the directory the path names now.
fn lock_dir(root: &Path) -> Result<File, DataDirError> {
    use std::os::unix::fs::MetadataExt;
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(root)
        .map_err(io(root))?;
    match dir.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(DataDirError::Locked {
                path: root.to_path_buf(),
                holder: lock_holder(root, &dir),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(root)(e)),
    }
    // The lock is on the inode opened above: if the path was renamed or replaced in
    // between, another server could lock the new directory under the same name.
    let locked = dir.metadata().map_err(io(root))?;
    let named = fs::metadata(root).map_err(io(root))?;
    if (locked.dev(), locked.ino()) != (named.dev(), named.ino()) {
        return Err(DataDirError::Invalid(format!(
            "{} was replaced while it was being locked; start again",
            root.display()
        )));
    }
    // The lock is the kernel's: where it lists its locks, ours must be there, held by us.
    if std::path::Path::new(PROC_LOCKS).exists() {
        match kernel_lock_holder(&dir) {
            Some(pid) if pid == std::process::id() => {}
            Some(pid) => {
                return Err(DataDirError::Locked {
                    path: root.to_path_buf(),
                    holder: format!("PID {pid}"),
                })
            }
            None => tracing::warn!(
                data_dir = %root.display(),
                "the kernel does not list this server's flock of the data directory; the \
                 filesystem may not support locks, so make sure no second server uses it"
            ),
        }
    }
    Ok(dir)
}

/// The kernel's table of file locks.
const PROC_LOCKS: &str = "/proc/locks";

/// The PID holding a flock of `file`'s inode, as the kernel lists it in `/proc/locks`.
fn kernel_lock_holder(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let inode = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = fs::read_to_string(PROC_LOCKS).ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF"; waiters have "->" and so
        // one field more, which this skips.
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() >= 6 && fields[1] == "FLOCK" && fields[5] == inode)
            .then(|| fields[4].parse::<u32>().ok())
            .flatten()
    })
}

/// Takes the flock of `root/LOCK` and writes this process's PID into it.
fn lock_file(root: &Path) -> Result<File, DataDirError> {
    let path = root.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(DataDirError::Locked {
                path: root.to_path_buf(),
                holder: format!("a server of an older release holds {}", path.display()),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    file.set_len(0).map_err(io(&path))?;
    writeln!(file, "{}", std::process::id()).map_err(io(&path))?;
    Ok(file)
}

/// Who holds the flock of the directory: the PID the kernel lists in `/proc/locks` for
/// its inode, else the PID recorded in `LOCK`.
fn lock_holder(root: &Path, dir: &File) -> String {
    let from_file = || {
        fs::read_to_string(root.join(LOCK_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
    };
    match kernel_lock_holder(dir).or_else(from_file) {
        Some(pid) => format!("PID {pid}"),
        None => "PID unknown: the LOCK file that records it is gone".to_string(),
    }
}

/// With the metadata present: every shard's log directory must be there unless no shard
/// has any history yet (a directory created and never used). A missing or emptied shard
/// directory would be recreated empty, hiding its events and reusing its ids.
fn check_shards_present(root: &Path, shards: usize) -> Result<(), DataDirError> {
    let mut missing = Vec::new();
    let mut with_history = 0;
    for index in 0..shards {
        let dir = shard_dir(root, index);
        match wal::presence(&dir).map_err(io(&dir))? {
            wal::Presence::Missing => missing.push(format!("{} is missing", dir.display())),
            wal::Presence::Empty => missing.push(format!(
                "{} is empty (no segment, no snapshot)",
                dir.display()
            )),
            wal::Presence::Unused => {}
            wal::Presence::History => with_history += 1,
        }
    }
    if missing.is_empty() || with_history == 0 {
        return Ok(());
    }
    Err(DataDirError::Invalid(format!(
        "{}: {}; this data directory was created with {shards} shards, every shard's log \
         directory was created at its first start, and {with_history} of them have \
         history: restore the missing shard directories from the same backup (a shard is \
         never recreated empty: its events would vanish and its ids be reused)",
        root.display(),
        missing.join("; ")
    )))
}

/// Without the metadata: refuse to write it over shard logs (the shard count it records
/// is what events are routed by; a different one would hide most events).
fn refuse_orphan_shards(root: &Path) -> Result<(), DataDirError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(root).map_err(io(root))? {
        let entry = entry.map_err(io(root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_shard = name
            .strip_prefix("shard-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_shard {
            continue;
        }
        let dir = entry.path();
        match wal::presence(&dir).map_err(io(&dir))? {
            wal::Presence::Missing | wal::Presence::Empty => {}
            wal::Presence::Unused | wal::Presence::History => found.push(name),
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    let meta_path = root.join(META_FILE);
    Err(DataDirError::Invalid(format!(
        "{} is missing, but {} shard directories with logs were found ({}): it records the \
         shard count that events are routed by, and writing a new one could route them \
         elsewhere. Restore it from a backup of this data directory, or, if these are all \
         of its shards, write it back as {{\"format\": {META_FORMAT}, \"shards\": {}}}",
        meta_path.display(),
        found.len(),
        found.join(", "),
        found.len()
    )))
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
        let first = DataDir::open(dir.path(), Some(2), Mode::Single).unwrap();
        let second = DataDir::open(dir.path(), None, Mode::Single).unwrap_err();
        assert!(matches!(second, DataDirError::Locked { .. }), "{second}");
        drop(first);
        assert_eq!(
            DataDir::open(dir.path(), None, Mode::Single)
                .unwrap()
                .shards(),
            2
        );
    }

    #[test]
    fn the_shard_count_is_fixed_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), Some(3), Mode::Single).unwrap());
        let err = DataDir::open(dir.path(), Some(4), Mode::Single).unwrap_err();
        assert!(err.to_string().contains("created with 3 shards"), "{err}");
    }

    #[test]
    fn generated_secrets_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), Some(1), Mode::Single).unwrap();
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

    #[test]
    fn deleting_the_lock_file_does_not_unlock_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DataDir::open(dir.path(), Some(1), Mode::Single).unwrap();
        let pid = fs::read_to_string(dir.path().join("LOCK")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        fs::remove_file(dir.path().join("LOCK")).unwrap();
        let err = DataDir::open(dir.path(), None, Mode::Single).unwrap_err();
        assert!(matches!(err, DataDirError::Locked { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
    }

    /// A shard directory whose log has one record (a segment from seq 1 with a nonzero
    /// first frame).
    fn fake_history(root: &Path, index: usize) {
        let dir = shard_dir(root, index);
        fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0u8; wal::SEGMENT_HEADER_LEN];
        bytes.extend_from_slice(&[5, 0, 0, 0]);
        fs::write(dir.join("seg-00000000000000000001.wal"), bytes).unwrap();
    }

    #[test]
    fn shard_logs_without_metadata_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        fake_history(dir.path(), 0);
        fake_history(dir.path(), 1);
        let err = DataDir::open(dir.path(), Some(4), Mode::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("boxoffice.json is missing"), "{err}");
        assert!(err.contains("2 shard directories"), "{err}");
        assert!(!dir.path().join(META_FILE).exists());
        assert!(!dir.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn a_missing_or_empty_shard_is_refused_once_another_has_history() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), Some(3), Mode::Single).unwrap());
        // Nothing written yet anywhere: a new directory starts.
        drop(DataDir::open(dir.path(), None, Mode::Single).unwrap());
        fake_history(dir.path(), 0);
        fake_history(dir.path(), 2);
        let err = DataDir::open(dir.path(), None, Mode::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shard-001 is missing"), "{err}");
        fs::create_dir(shard_dir(dir.path(), 1)).unwrap();
        let err = DataDir::open(dir.path(), None, Mode::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shard-001 is empty"), "{err}");
        fake_history(dir.path(), 1);
        assert_eq!(
            DataDir::open(dir.path(), None, Mode::Single)
                .unwrap()
                .shards(),
            3
        );
    }

    fn recorded_mode(root: &Path) -> Option<Mode> {
        let meta: Meta = serde_json::from_slice(&fs::read(root.join(META_FILE)).unwrap()).unwrap();
        meta.mode
    }

    #[test]
    fn the_mode_is_recorded_at_creation_and_the_other_mode_is_refused() {
        for (mode, other, says) in [
            (Mode::Single, Mode::Cluster, "single-node server's data"),
            (Mode::Cluster, Mode::Single, "cluster node's data"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            drop(DataDir::open(dir.path(), Some(2), mode).unwrap());
            assert_eq!(recorded_mode(dir.path()), Some(mode));
            // Refused although nothing was ever written to a shard.
            let err = DataDir::open(dir.path(), Some(2), other)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
            assert_eq!(recorded_mode(dir.path()), Some(mode));
            assert_eq!(DataDir::open(dir.path(), None, mode).unwrap().shards(), 2);
        }
    }

    #[test]
    fn a_directory_written_before_the_mode_was_recorded_opens_in_the_mode_it_was_made_in() {
        let old_meta = |root: &Path| {
            fs::write(root.join(META_FILE), br#"{"format": 1, "shards": 2}"#).unwrap();
        };
        // A cluster node's: a shard has a Raft log.
        let cluster = tempfile::tempdir().unwrap();
        old_meta(cluster.path());
        fs::create_dir_all(raft_log_dir(cluster.path(), 1)).unwrap();
        let err = DataDir::open(cluster.path(), None, Mode::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster node's data"), "{err}");
        assert_eq!(
            recorded_mode(cluster.path()),
            None,
            "a refusal writes nothing"
        );
        drop(DataDir::open(cluster.path(), Some(2), Mode::Cluster).unwrap());
        assert_eq!(recorded_mode(cluster.path()), Some(Mode::Cluster));
        // A single node's: a shard log has history.
        let single = tempfile::tempdir().unwrap();
        old_meta(single.path());
        fake_history(single.path(), 0);
        fs::create_dir_all(shard_dir(single.path(), 1)).unwrap();
        fake_history(single.path(), 1);
        let err = DataDir::open(single.path(), Some(2), Mode::Cluster)
            .unwrap_err()
            .to_string();
        assert!(err.contains("single-node server's data"), "{err}");
        drop(DataDir::open(single.path(), None, Mode::Single).unwrap());
        assert_eq!(recorded_mode(single.path()), Some(Mode::Single));
        // Neither (never used): whichever opens it records its own.
        let unused = tempfile::tempdir().unwrap();
        old_meta(unused.path());
        drop(DataDir::open(unused.path(), None, Mode::Cluster).unwrap());
        assert_eq!(recorded_mode(unused.path()), Some(Mode::Cluster));
    }
}
