//! # boxoffice write-ahead log
//!
//! The durable memory of a shard: an append-only log of opaque records, split into
//! segment files, plus snapshots. It knows nothing of tickets: a record is bytes.
//!
//! **Group commit.** [`Wal::append`] frames a whole batch of records and writes it with
//! one write; [`Wal::sync`] makes it durable with one `fdatasync`. A caller acknowledges
//! a record only after `sync` returned `Ok`, so the cost of durability is paid once per
//! batch, not once per record.
//!
//! **Frames you can trust.** Every record carries its length, its sequence number and a
//! CRC32C that also covers the previous record's CRC. The chain is what tells a crash
//! from damage: a crash can only cut the end of the newest segment (a torn tail, cut off
//! at open and reported), while a bad record followed by a good one that chains to it is
//! corruption, and open refuses it with the file and byte offset. See
//! `docs/wal-format.md` for the bytes and the rules.
//!
//! **Fail-stop.** After any failed write or fsync the log latches and refuses every later
//! append ([`Error::FailedEarlier`]): a failed fsync may have dropped dirty pages, and retrying
//! it could report durable what is not. The one exception: a write that found no space
//! (ENOSPC, EDQUOT, EFBIG) after which the log cut itself back to its durable end is
//! [`Error::NoSpace`] and latches nothing; [`Wal::probe_space`] checks for room again.
//!
//! **Snapshots.** [`Wal::write_snapshot`] stores a caller's state covering records up to
//! a seq (temporary file, fsync, rename, directory fsync); segments wholly covered by the
//! older of the two newest snapshots are deleted, so a damaged newest snapshot falls back
//! to the previous one plus the log.
//!
//! **For a replicated log.** A Raft log (boxoffice's cluster mode) also needs
//! [`Wal::truncate_after`] (drop the newest records, durably, before the next append) and
//! [`Wal::purge`] (delete whole segments before a seq, or jump past the end), reopened with
//! [`Wal::open_with_purged`]. The single-node log never calls them, and they write nothing
//! the single-node format does not have.
//!
//! **The storage seam.** All I/O goes through [`storage::Storage`], so tests run the same
//! code over [`storage::CrashStorage`] (crash: unsynced bytes vanish or tear) and
//! [`storage::FaultStorage`] (the Nth operation fails with EIO, ENOSPC or a short write).
#![warn(clippy::too_many_lines)]

mod error;
mod format;
mod inspect;
mod log;
mod scan;
pub mod storage;
mod tail;

pub use error::{Error, ReplayError};
pub use format::{
    FORMAT_VERSION, RECORD_HEADER_LEN, RECORD_LEN_MAX, SEGMENT_HEADER_LEN, SNAPSHOT_HEADER_LEN,
    SNAPSHOT_WRITE_PIECE,
};
pub use inspect::{inspect, presence, verify, Item, Presence, VerifyReport};
pub use log::{
    read_snapshot_file, remove_files, snapshot_file_name, snapshot_seqs, write_snapshot_file,
    write_snapshot_file_paced, Options, Recovery, Snapshot, Wal,
};
pub use scan::TornTail;
pub use storage::{CrashStorage, FaultKind, FaultStorage, FileStorage, Storage, TearMode};
pub use tail::read_durable;
