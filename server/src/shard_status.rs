//! What a shard tells the rest of the server: a command's result ([`CommandResult`],
//! [`ShardError`]) and the shard's health ([`ShardStatus`], [`Readiness`]), which the HTTP
//! side reads for `/ready` and `/metrics` without the shard thread. The shard thread
//! (`shard.rs`), its core (`core.rs`) and the core's log stage write them; none of them is
//! needed to read them.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use engine::{Output, Rejection};
use parking_lot::Mutex;

use crate::limits::SYNC_STALL_MAX;

/// What a shard answers to a command.
pub type CommandResult = Result<Output, ShardError>;

/// Why a shard did not carry out a command.
#[derive(Debug, Clone)]
pub enum ShardError {
    /// The engine refused it (a business outcome).
    Rejected(Rejection),
    /// The shard cannot write (log failure, or recovery failed); the reason is logged.
    Unavailable(String),
    /// The command's decision was written but whether it took effect is not known (a
    /// cluster failover left it open): retry with the same idempotency key.
    OutcomeUnknown(String),
}

const RECOVERING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;
const FULL: u8 = 3;

/// Microseconds of the process's monotonic clock (from its first use), plus one, so that
/// 0 can mean "none" in an atomic.
fn mono_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

/// What `/ready` says of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Recovered and writing.
    Ready,
    /// Still replaying its log.
    Recovering,
    /// A batch has waited longer than [`SYNC_STALL_MAX`] for its write and fdatasync.
    Stalled(String),
    /// The log found no space; writes resume by themselves once there is room.
    Full(String),
    /// Cannot write until a restart (a failed fdatasync, damage, a failed rebuild).
    Failed(String),
}

/// A shard's health, shared with the HTTP side for `/ready` and `/metrics`. The HTTP side
/// reads it without the shard thread, which may be blocked in an fdatasync.
#[derive(Debug, Default)]
pub struct ShardStatus {
    state: AtomicU8,
    reason: Mutex<Option<String>>,
    /// Set when the failure happened in recovery (damage on disk), not in a later write.
    at_recovery: std::sync::atomic::AtomicBool,
    /// [`mono_us`] when the batch now being written and synced started its write; 0 when
    /// no batch is unsynced.
    unsynced_since_us: AtomicU64,
    /// Longest loop gap (µs) since the last [`ShardStatus::take_loop_gap`].
    loop_gap_max_us: AtomicU64,
}

impl ShardStatus {
    /// Recovered and able to write.
    pub fn is_ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }
    /// What `/ready` reports for this shard, computed now from the shared state.
    pub fn readiness(&self, index: usize) -> Readiness {
        match self.state.load(Ordering::Acquire) {
            RECOVERING => Readiness::Recovering,
            FAILED => Readiness::Failed(self.failure().unwrap_or_default()),
            FULL => Readiness::Full(self.failure().unwrap_or_default()),
            _ => match self.unsynced_age() {
                Some(age) if age > SYNC_STALL_MAX => Readiness::Stalled(format!(
                    "shard {index}: a batch has waited {:.1} s for its log write and \
                     fdatasync (more than {} s): the disk is stuck",
                    age.as_secs_f64(),
                    SYNC_STALL_MAX.as_secs()
                )),
                _ => Readiness::Ready,
            },
        }
    }
    /// How long the oldest batch not yet durable has been waiting, if one is.
    pub fn unsynced_age(&self) -> Option<Duration> {
        match self.unsynced_since_us.load(Ordering::Acquire) {
            0 => None,
            since => Some(Duration::from_micros(mono_us().saturating_sub(since))),
        }
    }
    /// The longest loop gap since the previous call (then starts over).
    pub fn take_loop_gap(&self) -> Duration {
        Duration::from_micros(self.loop_gap_max_us.swap(0, Ordering::AcqRel))
    }
    pub(crate) fn note_loop_gap(&self, gap: Duration) {
        self.loop_gap_max_us
            .fetch_max(gap.as_micros() as u64, Ordering::AcqRel);
    }
    pub(crate) fn set_unsynced(&self, waiting: bool) {
        let value = if waiting { mono_us() } else { 0 };
        self.unsynced_since_us.store(value, Ordering::Release);
    }
    pub(crate) fn set_full(&self, reason: String) {
        *self.reason.lock() = Some(reason);
        self.state.store(FULL, Ordering::Release);
    }
    /// Still replaying its log.
    pub fn is_recovering(&self) -> bool {
        self.state.load(Ordering::Acquire) == RECOVERING
    }
    /// Why the shard cannot write, if it cannot.
    pub fn failure(&self) -> Option<String> {
        self.reason.lock().clone()
    }
    pub(crate) fn set_ready(&self) {
        *self.reason.lock() = None;
        self.state.store(READY, Ordering::Release);
    }
    /// Why recovery failed, if it did (the server stops start-up on it).
    pub fn recovery_failure(&self) -> Option<String> {
        if self.at_recovery.load(Ordering::Acquire) {
            self.failure()
        } else {
            None
        }
    }
    pub(crate) fn set_recovery_failed(&self, reason: String) {
        self.at_recovery.store(true, Ordering::Release);
        self.set_failed(reason);
    }
    pub(crate) fn set_failed(&self, reason: String) {
        *self.reason.lock() = Some(reason);
        self.state.store(FAILED, Ordering::Release);
    }
}
