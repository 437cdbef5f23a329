//! `wal::Error`: every failure carries the file (and, for corruption, the byte offset).

use std::path::PathBuf;

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`append`, `fdatasync`, `rename`, ...).
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A checksum or frame is wrong where a crash cannot explain it.
    #[error("{path}: corruption at byte offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Offset of the damaged record or header in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Refused: an earlier write or fsync failed and latched the log, which refuses every
    /// later append and sync (it never retries an fsync, whose failure may have dropped
    /// dirty pages). Carries the earlier failure.
    #[error("the log failed earlier and refuses writes: {0}")]
    FailedEarlier(String),
    /// A caller error (a snapshot for a sequence number that is not durable, a record too big).
    #[error("{0}")]
    Invalid(String),
    /// A write found no space (ENOSPC, EDQUOT, or EFBIG at a file-size limit) and the log
    /// cut itself back to its durable end: nothing of the batch is in the log and nothing
    /// latched, so a later append may succeed once there is space again (see
    /// [`crate::Wal::probe_space`]). A failed fdatasync is never this kind.
    #[error("{path}: {op}: {source} (no space; the log is back at its durable end)")]
    NoSpace {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// Whether a later append may succeed without a restart (the log did not latch).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }
}

/// Whether an I/O error says the device, a quota or a file-size limit is full.
pub(crate) fn is_full(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge
    )
}

/// An error from [`crate::Wal::replay`]: the log's own, or the visitor's.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// Reading the log failed.
    #[error(transparent)]
    Wal(#[from] Error),
    /// The visitor returned an error.
    #[error("replay visitor failed: {0:?}")]
    Visitor(E),
}
