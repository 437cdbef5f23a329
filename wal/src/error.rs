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
    /// A previous write or fsync failed: the log refuses every later append (it never
    /// retries an fsync, whose failure may have dropped dirty pages).
    #[error("the log failed earlier and refuses writes: {0}")]
    Failed(String),
    /// A caller error (a snapshot for a sequence number that is not durable, a record too big).
    #[error("{0}")]
    Invalid(String),
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
