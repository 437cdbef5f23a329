//! The bytes on disk, field by field (drawn in docs/wal-format.md). Integers are
//! fixed-width little-endian; every offset is derived from the one before it.
//!
//! Segment file `seg-<first seq, 20 digits>.wal`:
//! ```text
//! +--------+---------+-------+-----------+------------+
//! | magic  | version | flags | first_seq | header_crc |   SEGMENT_HEADER_LEN = 28
//! | 8      | 4       | 4     | 8         | 4          |
//! +--------+---------+-------+-----------+------------+
//! then records, each:
//! +-------+-------+-----+---------+
//! | len   | crc   | seq | payload |   RECORD_HEADER_LEN = 16, then len bytes
//! | u32   | u32   | u64 | len     |
//! +-------+-------+-----+---------+
//! crc = crc32c(prev_crc_le || len_le || seq_le || payload); prev_crc of the first
//! record of a segment is the segment's header_crc.
//! then, from version 2, optional padding to the end of the file: zeros written ahead of
//! the records to come, so that an fdatasync does not also have to write the inode
//! ("padding" is the one word for them, here and in the log).
//! ```
//! Snapshot file `snap-<seq, 20 digits>.snap`:
//! ```text
//! | magic 8 | version 4 | flags 4 | seq 8 | len 8 | crc 4 | payload len |   SNAPSHOT_HEADER_LEN = 36
//! crc = crc32c(seq_le || len_le || payload)
//! ```

/// First bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BOXWAL\r\n";
/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"BOXSNAP\n";
/// The format version this build writes (and the newest it reads). Version 2 added zero
/// padding after a segment's last record; version 1 files are read as before.
pub const FORMAT_VERSION: u32 = 2;

/// The first segment format version whose files may end in zero padding.
pub const PADDED_SINCE_VERSION: u32 = 2;

const MAGIC_LEN: usize = 8;
const VERSION_OFF: usize = MAGIC_LEN;
const FLAGS_OFF: usize = VERSION_OFF + 4;
const FIRST_SEQ_OFF: usize = FLAGS_OFF + 4;
const HEADER_CRC_OFF: usize = FIRST_SEQ_OFF + 8;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_LEN: usize = HEADER_CRC_OFF + 4;

const LEN_OFF: usize = 0;
const CRC_OFF: usize = LEN_OFF + 4;
const SEQ_OFF: usize = CRC_OFF + 4;
/// Bytes of a record header (before the payload).
pub const RECORD_HEADER_LEN: usize = SEQ_OFF + 8;

const SNAP_SEQ_OFF: usize = FLAGS_OFF + 4;
const SNAP_LEN_OFF: usize = SNAP_SEQ_OFF + 8;
const SNAP_CRC_OFF: usize = SNAP_LEN_OFF + 8;
/// Bytes of a snapshot header.
pub const SNAPSHOT_HEADER_LEN: usize = SNAP_CRC_OFF + 4;

/// Largest record payload (a decision is far smaller; this bounds a corrupt length).
pub const RECORD_LEN_MAX: usize = 16 * 1024 * 1024;
/// A snapshot file is written and fdatasynced this many payload bytes at a time (1 MiB),
/// so that the log's own fdatasync, queued behind it on the device, waits for one piece at
/// most (docs/benchmarks.md, "Snapshot copies and writes").
pub const SNAPSHOT_WRITE_PIECE: usize = 1024 * 1024;

const _: () = assert!(SEGMENT_HEADER_LEN == 28);
const _: () = assert!(RECORD_HEADER_LEN == 16);
const _: () = assert!(SNAPSHOT_HEADER_LEN == 36);

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// A segment header for a segment whose first record is `first_seq`.
pub fn segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..MAGIC_LEN].copy_from_slice(&SEGMENT_MAGIC);
    h[VERSION_OFF..FLAGS_OFF].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[FIRST_SEQ_OFF..HEADER_CRC_OFF].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[..HEADER_CRC_OFF]);
    h[HEADER_CRC_OFF..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A parsed segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version it was written with.
    pub version: u32,
    /// Seq of its first record.
    pub first_seq: u64,
    /// Seed of its CRC chain.
    pub crc: u32,
}

/// Parses a segment header; `Err` says what is wrong.
pub fn parse_segment_header(b: &[u8]) -> Result<SegmentHeader, String> {
    if b.len() < SEGMENT_HEADER_LEN {
        return Err(format!(
            "segment header cut short ({} of {SEGMENT_HEADER_LEN} bytes)",
            b.len()
        ));
    }
    if b[..MAGIC_LEN] != SEGMENT_MAGIC {
        return Err("not a boxoffice log segment (bad magic)".into());
    }
    let crc = u32_at(b, HEADER_CRC_OFF);
    if crc32c::crc32c(&b[..HEADER_CRC_OFF]) != crc {
        return Err("segment header checksum mismatch".into());
    }
    let version = u32_at(b, VERSION_OFF);
    if version == 0 || version > FORMAT_VERSION {
        return Err(format!(
            "format version {version} is not readable by this build"
        ));
    }
    Ok(SegmentHeader {
        version,
        first_seq: u64_at(b, FIRST_SEQ_OFF),
        crc,
    })
}

/// The chained checksum of a record.
pub fn record_crc(prev_crc: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut head = [0u8; 16];
    head[..4].copy_from_slice(&prev_crc.to_le_bytes());
    head[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[8..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), payload)
}

/// Appends one framed record to `out`; returns its crc (the next record's `prev_crc`).
pub fn encode_record(out: &mut Vec<u8>, prev_crc: u32, seq: u64, payload: &[u8]) -> u32 {
    let crc = record_crc(prev_crc, seq, payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    crc
}

/// What is at an offset of a segment body.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole, valid record.
    Record {
        /// Its seq.
        seq: u64,
        /// Its payload.
        payload: &'a [u8],
        /// Its crc.
        crc: u32,
        /// Bytes it takes, header included.
        len: usize,
    },
    /// The bytes end inside this frame (a torn write, or a truncation).
    Incomplete,
    /// The frame is whole but its checksum or seq is wrong.
    Bad {
        /// What is wrong.
        reason: String,
        /// Where the next frame would start, if the length field is believable.
        next: Option<usize>,
    },
}

/// Whether `rest`, the bytes after a segment's last whole record, is zero padding: all
/// zero. A record's header is never all zero (its seq is at least 1), so the padding
/// cannot be mistaken for a record.
pub fn is_padding(rest: &[u8]) -> bool {
    // In words: the padding can be a megabyte, and this runs at every open.
    let words = rest.chunks_exact(8);
    let tail = words.remainder();
    tail.iter().all(|&b| b == 0)
        && words
            .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
            .all(|w| w == 0)
}

/// Reads the frame at the start of `b`.
pub fn read_frame(b: &[u8], prev_crc: u32, expected_seq: u64) -> Frame<'_> {
    if b.len() < RECORD_HEADER_LEN {
        return Frame::Incomplete;
    }
    let len = u32_at(b, LEN_OFF) as usize;
    if len > RECORD_LEN_MAX {
        return Frame::Bad {
            reason: format!("record length {len} over the limit"),
            next: None,
        };
    }
    let total = RECORD_HEADER_LEN + len;
    if b.len() < total {
        return Frame::Incomplete;
    }
    let crc = u32_at(b, CRC_OFF);
    let seq = u64_at(b, SEQ_OFF);
    let payload = &b[RECORD_HEADER_LEN..total];
    if record_crc(prev_crc, seq, payload) != crc {
        return Frame::Bad {
            reason: "record checksum mismatch".into(),
            next: Some(total),
        };
    }
    if seq != expected_seq {
        return Frame::Bad {
            reason: format!("seq {seq} where {expected_seq} was due"),
            next: Some(total),
        };
    }
    Frame::Record {
        seq,
        payload,
        crc,
        len: total,
    }
}

/// A snapshot file's bytes.
#[cfg(test)]
pub fn encode_snapshot(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = snapshot_header(seq, payload);
    out.extend_from_slice(payload);
    out
}

/// The header of the snapshot of `seq` whose payload is `payload` (the file is this header
/// followed by the payload; writing the two one after the other saves copying the payload).
pub fn snapshot_header(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[SNAP_SEQ_OFF..SNAP_CRC_OFF]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Parses a snapshot file: (seq, payload range), or what is wrong.
pub fn parse_snapshot(b: &[u8]) -> Result<(u64, std::ops::Range<usize>), String> {
    if b.len() < SNAPSHOT_HEADER_LEN {
        return Err("snapshot header cut short".into());
    }
    if b[..MAGIC_LEN] != SNAPSHOT_MAGIC {
        return Err("not a boxoffice snapshot (bad magic)".into());
    }
    let version = u32_at(b, VERSION_OFF);
    if version == 0 || version > FORMAT_VERSION {
        return Err(format!(
            "snapshot format version {version} is not readable by this build"
        ));
    }
    let seq = u64_at(b, SNAP_SEQ_OFF);
    let len = u64_at(b, SNAP_LEN_OFF) as usize;
    if b.len() != SNAPSHOT_HEADER_LEN + len {
        return Err(format!(
            "snapshot is {} bytes, its header says {}",
            b.len(),
            SNAPSHOT_HEADER_LEN + len
        ));
    }
    let payload = &b[SNAPSHOT_HEADER_LEN..];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[SNAP_SEQ_OFF..SNAP_CRC_OFF]), payload);
    if crc != u32_at(b, SNAP_CRC_OFF) {
        return Err("snapshot checksum mismatch".into());
    }
    Ok((seq, SNAPSHOT_HEADER_LEN..b.len()))
}

/// File name of the segment starting at `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.wal")
}

/// File name of the snapshot covering up to `seq`.
pub fn snapshot_name(seq: u64) -> String {
    format!("snap-{seq:020}.snap")
}

/// The first seq of a segment file name.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".wal")?
        .parse()
        .ok()
}

/// The seq of a snapshot file name.
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    name.strip_prefix("snap-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_any_flipped_bit_is_caught() {
        let header = segment_header(7);
        let seed = parse_segment_header(&header).unwrap().crc;
        let mut buf = Vec::new();
        encode_record(&mut buf, seed, 7, b"hello");
        assert!(matches!(
            read_frame(&buf, seed, 7),
            Frame::Record {
                seq: 7,
                payload: b"hello",
                ..
            }
        ));
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(read_frame(&bad, seed, 7), Frame::Record { .. }),
                "bit {bit}"
            );
        }
        assert_eq!(
            read_frame(&buf[..buf.len() - 1], seed, 7),
            Frame::Incomplete
        );
    }

    #[test]
    fn snapshots_round_trip() {
        let bytes = encode_snapshot(42, b"state");
        let (seq, range) = parse_snapshot(&bytes).unwrap();
        assert_eq!((seq, &bytes[range]), (42, &b"state"[..]));
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(parse_snapshot(&bad).is_err());
    }
}
