//! What changed: the log's records. Variants are append-only; every record starts with
//! a format version.

use serde::{Deserialize, Serialize};

use crate::engine::CodecError;

/// A decision. (Variants to be defined by the engine implementation.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {}

impl Decision {
    /// Appends the versioned encoding to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let _ = buf;
        unimplemented!()
    }

    /// Decodes one record written by [`Decision::encode`] (this or an older version).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let _ = bytes;
        unimplemented!()
    }

    /// Engine time of the decision, ms since the Unix epoch.
    pub fn at_ms(&self) -> u64 {
        unimplemented!()
    }
}
