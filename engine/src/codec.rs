//! The one bincode configuration of the engine, and the format versions.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::CodecError;

/// Version byte that starts every encoded decision.
pub const DECISION_VERSION: u8 = 1;
/// Version byte of a snapshot that holds the state alone (still written by a shard that
/// never used a waiting list, and always readable).
pub const SNAPSHOT_VERSION_1: u8 = 1;
/// Version byte of a snapshot that holds the state, then the waiting lists.
pub const SNAPSHOT_VERSION: u8 = 2;

/// bincode 2, standard configuration (little-endian, varint integers). Never change it
/// for an existing version: it defines the bytes of the log.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Serializes `value` onto the end of `buf`.
pub fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) {
    bincode::serde::encode_into_std_write(value, buf, CONFIG)
        .expect("writing to a Vec cannot fail");
}

/// Deserializes a value that must take all of `bytes`.
pub fn decode_all<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, CONFIG).map_err(|e| CodecError(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(value)
}
