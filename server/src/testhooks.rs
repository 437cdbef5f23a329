//! Test hooks: behaviour that only an environment variable set by a test turns on. Each
//! variable is read once; unset, a hook costs one atomic load.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

/// While the file this variable names exists, every shard waits before writing and syncing
/// its batch, as if the disk were frozen: the end-to-end tests use it to hold a command
/// queued and unanswered.
pub const PAUSE_SYNC_ENV: &str = "BOXOFFICE_TEST_PAUSE_SYNC";

/// Waits while the file named by [`PAUSE_SYNC_ENV`] exists (not at all when it is unset).
pub fn pause_before_sync() {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    if let Some(path) = PATH.get_or_init(|| std::env::var_os(PAUSE_SYNC_ENV).map(PathBuf::from)) {
        while path.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// While the file this variable names exists, every shard's snapshot writer waits after it
/// wrote and fsynced a snapshot's temporary file and before it renames it into place (it
/// logs `snapshot paused by a test hook` once per pause): the end-to-end tests use it to
/// hold a snapshot in progress, to kill the server in the middle of one or to show the
/// shard answering while one is unfinished.
pub const PAUSE_SNAPSHOT_ENV: &str = "BOXOFFICE_TEST_PAUSE_SNAPSHOT";

/// Waits while the file named by [`PAUSE_SNAPSHOT_ENV`] exists (not at all when it is unset).
pub fn pause_before_snapshot_rename(shard: u16) {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    let path = PATH.get_or_init(|| std::env::var_os(PAUSE_SNAPSHOT_ENV).map(PathBuf::from));
    if let Some(path) = path.as_ref().filter(|p| p.exists()) {
        tracing::info!(shard, "snapshot paused by a test hook");
        while path.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// While the file this variable names exists, every shard's follower waits before it takes
/// its next batch, as if its core were busy: the end-to-end tests use it to make a shard
/// overflow its follower's queue.
pub const PAUSE_FOLLOWER_ENV: &str = "BOXOFFICE_TEST_PAUSE_FOLLOWER";

/// Waits while the file named by [`PAUSE_FOLLOWER_ENV`] exists (not at all when it is unset).
pub fn pause_follower() {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    if let Some(path) = PATH.get_or_init(|| std::env::var_os(PAUSE_FOLLOWER_ENV).map(PathBuf::from))
    {
        while path.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
