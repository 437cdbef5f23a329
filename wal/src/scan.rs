//! Reading segments back: the scanner behind open, verify and dump (replay reads again
//! the frames open found valid, with `format::read_frame`, and calls any difference
//! corruption). It decides what a damaged frame means (see docs/wal-format.md,
//! "Recovery rules"):
//!
//! - In any segment but the newest, every frame must be whole and valid: anything else
//!   is corruption, reported with file and offset.
//! - In the newest segment, a bad or incomplete frame at offset X is a torn tail (cut at
//!   X) unless a valid record with the next seq, chained to the damaged one, can be found
//!   anywhere after X: then the damage is provably not a crash, and it is corruption.
//!   So a damaged very last record is cut, like a torn write; this is the policy for the
//!   one ambiguous case.
//! - From format version 2, a segment may end in padding (zeros the log wrote ahead of
//!   the records to come): where the next frame would start, nothing but zero bytes to
//!   the end of the file ends the segment cleanly, in any segment. Bytes that are not all
//!   zero are a frame, judged by the rules above.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::format::{self, Frame, SegmentHeader, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// A torn tail found (and, by `Wal::open`, cut) at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The newest segment.
    pub path: PathBuf,
    /// Where the torn bytes start (the file is cut to this length).
    pub offset: u64,
    /// How many bytes were (or would be) cut.
    pub bytes_cut: u64,
}

/// What scanning one segment found.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    /// First seq (from the header).
    pub first_seq: u64,
    /// Last valid seq (`first_seq - 1` when empty).
    pub last_seq: u64,
    /// Bytes of the valid prefix.
    pub valid_len: u64,
    /// CRC of the last valid record (the chain's next seed).
    pub last_crc: u32,
    /// Set when the segment ends in a torn tail.
    pub torn: Option<TornTail>,
    /// Bytes of zero padding after the last record (format version 2 on).
    pub padding: u64,
    /// The format version of the segment's header (0 when the header was torn).
    pub version: u32,
}

/// Scans segment `bytes` (named `path`), calling `visit(offset, seq, payload)` for every
/// valid record. `newest` allows a torn tail; `expected_first` checks continuity.
pub fn scan_segment(
    path: &Path,
    bytes: &[u8],
    newest: bool,
    expected_first: Option<u64>,
    visit: impl FnMut(u64, u64, &[u8]),
) -> Result<SegmentScan, Error> {
    let header = match format::parse_segment_header(bytes) {
        Ok(header) => header,
        Err(_) if newest && bytes.len() <= SEGMENT_HEADER_LEN => {
            // A segment whose creation was cut short holds no record: all of it is torn.
            return Ok(SegmentScan {
                first_seq: expected_first.unwrap_or(0),
                last_seq: expected_first.unwrap_or(1).saturating_sub(1),
                valid_len: 0,
                last_crc: 0,
                torn: Some(TornTail {
                    path: path.to_path_buf(),
                    offset: 0,
                    bytes_cut: bytes.len() as u64,
                }),
                padding: 0,
                version: 0,
            });
        }
        Err(reason) => return Err(corrupt(path, 0, reason)),
    };
    if let Some(expected) = expected_first {
        if header.first_seq != expected {
            return Err(corrupt(
                path,
                0,
                format!(
                    "segment starts at seq {}, {expected} was due",
                    header.first_seq
                ),
            ));
        }
    }
    scan_records(path, bytes, newest, &header, visit)
}

/// Corruption in `path` at `offset`.
fn corrupt(path: &Path, offset: usize, reason: String) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    }
}

/// The records of segment `bytes` after its `header`, up to its end, its padding or a
/// damaged frame (a torn tail in the `newest` segment, else corruption).
fn scan_records(
    path: &Path,
    bytes: &[u8],
    newest: bool,
    header: &SegmentHeader,
    mut visit: impl FnMut(u64, u64, &[u8]),
) -> Result<SegmentScan, Error> {
    let mut offset = SEGMENT_HEADER_LEN;
    let mut prev_crc = header.crc;
    let mut seq = header.first_seq;
    let padded = header.version >= format::PADDED_SINCE_VERSION;
    let ended = |offset: usize, prev_crc: u32, seq: u64, torn: Option<TornTail>, padding: u64| {
        SegmentScan {
            first_seq: header.first_seq,
            last_seq: seq - 1,
            valid_len: offset as u64,
            last_crc: prev_crc,
            torn,
            padding,
            version: header.version,
        }
    };
    loop {
        if offset == bytes.len() {
            break;
        }
        // A record header is never all zero, so this test costs nothing per record; the
        // whole rest is looked at only where padding may start.
        if padded && bytes[offset] == 0 && format::is_padding(&bytes[offset..]) {
            break;
        }
        match format::read_frame(&bytes[offset..], prev_crc, seq) {
            Frame::Record {
                seq: s,
                payload,
                crc,
                len,
            } => {
                visit(offset as u64, s, payload);
                prev_crc = crc;
                seq += 1;
                offset += len;
            }
            damaged => {
                let reason = match damaged {
                    Frame::Bad { reason, .. } => reason,
                    _ => "record cut short".to_string(),
                };
                if !newest || later_record_exists(&bytes[offset..], prev_crc, seq) {
                    return Err(corrupt(path, offset, reason));
                }
                let torn = TornTail {
                    path: path.to_path_buf(),
                    offset: offset as u64,
                    bytes_cut: (bytes.len() - offset) as u64,
                };
                return Ok(ended(offset, prev_crc, seq, Some(torn), 0));
            }
        }
    }
    let padding = (bytes.len() - offset) as u64;
    Ok(ended(offset, prev_crc, seq, None, padding))
}

/// Whether, after the damaged frame at the start of `rest` (which should have been
/// record `seq`, chained from `prev_crc`), a valid record `seq + 1` follows: proof that
/// the damage is not a torn write. The damaged frame's own CRC is taken both as stored
/// and as recomputed, so a flip in its CRC field or in its payload is caught alike; the
/// search tries every offset, so a flip in its length field is caught too.
fn later_record_exists(rest: &[u8], prev_crc: u32, seq: u64) -> bool {
    if rest.len() < RECORD_HEADER_LEN {
        return false;
    }
    let stored = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let mut seeds = vec![stored];
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    if RECORD_HEADER_LEN + len <= rest.len() {
        let payload = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
        seeds.push(format::record_crc(prev_crc, seq, payload));
    }
    let want = (seq + 1).to_le_bytes();
    (RECORD_HEADER_LEN..rest.len().saturating_sub(RECORD_HEADER_LEN - 1)).any(|at| {
        rest[at + 8..at + 16] == want
            && seeds.iter().any(|&seed| {
                matches!(
                    format::read_frame(&rest[at..], seed, seq + 1),
                    Frame::Record { .. }
                )
            })
    })
}
