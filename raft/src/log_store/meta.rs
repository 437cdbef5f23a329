//! The log store's small files next to the segments: `vote`, `committed`, `purged`, `start`.
//!
//! Each is `crc32c(payload)` (u32, little-endian) followed by the payload (bincode 2 of the
//! value, standard configuration). A file is replaced whole: a temporary file is written
//! and fsynced, renamed over the old one, and the directory fsynced, so a crash leaves the
//! old value or the new one, never a mix. A file whose checksum does not match is damage,
//! not a crash, and stops start-up with its path.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wal::Storage;

use super::LogStoreError;

/// The vote file.
pub(crate) const VOTE: &str = "vote";
/// The committed log id file.
pub(crate) const COMMITTED: &str = "committed";
/// The file of the last purged log id (written before the segments are deleted).
pub(crate) const PURGED: &str = "purged";
/// The file of the wal seq before the first entry, when an empty log started at a later
/// index than its next one (written before the wal moves its start).
pub(crate) const START: &str = "start";

/// Bytes of the checksum before the payload.
const CRC_LEN: usize = 4;

/// The bincode configuration of every value the store writes.
pub(crate) fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` (what it is: `what`, for the message).
pub(crate) fn encode<T: Serialize>(
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, LogStoreError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|error| LogStoreError::Encode {
        what,
        reason: error.to_string(),
    })
}

/// Durably replaces file `name` with `payload` (temporary file, fsync, rename, directory fsync).
pub(crate) fn write<S: Storage>(
    storage: &mut S,
    name: &str,
    payload: &[u8],
) -> Result<(), LogStoreError> {
    let dir = storage.dir().to_path_buf();
    let tmp = format!("{name}.tmp");
    let mut bytes = Vec::with_capacity(CRC_LEN + payload.len());
    bytes.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    let io = |op: &'static str, file: &str| {
        let path = dir.join(file);
        move |source| LogStoreError::Io { path, op, source }
    };
    storage.create(&tmp).map_err(io("create", &tmp))?;
    storage.append(&tmp, &bytes).map_err(io("write", &tmp))?;
    storage.sync(&tmp).map_err(io("fdatasync", &tmp))?;
    storage.rename(&tmp, name).map_err(io("rename", name))?;
    storage.sync_dir().map_err(io("fsync directory", ""))
}

/// Reads file `name`: `None` if it does not exist, the value if it is whole, an error naming
/// the file if it is damaged.
pub(crate) fn read<S: Storage, T: DeserializeOwned>(
    storage: &S,
    name: &str,
) -> Result<Option<T>, LogStoreError> {
    let path = storage.dir().join(name);
    let names = storage.list().map_err(|source| LogStoreError::Io {
        path: storage.dir().to_path_buf(),
        op: "list",
        source,
    })?;
    if !names.iter().any(|n| n == name) {
        return Ok(None);
    }
    let bytes = storage.read(name).map_err(|source| LogStoreError::Io {
        path: path.clone(),
        op: "read",
        source,
    })?;
    if bytes.len() < CRC_LEN {
        return Err(LogStoreError::Corrupt {
            path,
            reason: format!("{} bytes, shorter than its checksum", bytes.len()),
        });
    }
    let (crc, payload) = bytes.split_at(CRC_LEN);
    if crc32c::crc32c(payload).to_le_bytes() != crc {
        return Err(LogStoreError::Corrupt {
            path,
            reason: "checksum mismatch".into(),
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(payload, config()).map_err(|error| {
        LogStoreError::Corrupt {
            path: path.clone(),
            reason: format!("cannot decode: {error}"),
        }
    })?;
    if used != payload.len() {
        return Err(LogStoreError::Corrupt {
            path,
            reason: format!("{} bytes after the value", payload.len() - used),
        });
    }
    Ok(Some(value))
}
