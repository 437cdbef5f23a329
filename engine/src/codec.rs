//! The engine's bytes: the one bincode configuration, the format versions, the snapshot
//! codec ([`Engine::snapshot`], [`Engine::restore`]) and [`CodecError`]. Decisions encode
//! themselves with these (decision.rs).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::decision::Decision;
use crate::derived::Derived;
use crate::engine::Engine;
use crate::state::State;
use crate::waitlist::Waitlists;

/// Errors decoding a decision or snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot decode: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

/// Version byte that starts every encoded decision but a refusal.
pub const DECISION_VERSION: u8 = 1;
/// Version byte of a [`Decision::Refused`] (the same encoding as version 1; the byte tells
/// a release that predates remembered refusals that it cannot read the record, rather
/// than letting it take the record for damage).
pub const DECISION_VERSION_REFUSED: u8 = 2;
/// Version byte of a snapshot that holds the state alone (still written by a shard that
/// never used a waiting list, and always readable).
pub const SNAPSHOT_VERSION_1: u8 = 1;
/// Version byte of a snapshot that holds the state, then the waiting lists.
pub const SNAPSHOT_VERSION: u8 = 2;
/// Version byte of a snapshot laid out as version 2 whose keys remember refusals (so a
/// release that predates them says the version is unknown instead of failing to decode).
pub const SNAPSHOT_VERSION_REFUSED: u8 = 3;

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

impl Engine {
    /// The whole state, versioned and deterministic: equal states give equal bytes.
    /// A shard that never used a waiting list or an offer TTL writes format version 1
    /// (the state alone); otherwise version 2 (the state, then the waiting lists).
    pub fn snapshot(&self) -> Vec<u8> {
        let refusals = !self.derived.refusals.is_empty();
        encode_snapshot(&self.state, &self.wait, refusals, 0)
    }

    /// A copy of what [`Engine::snapshot`] encodes, to encode on another thread: the
    /// state and the waiting lists, without the indexes derived from them (which
    /// [`Engine::restore`] rebuilds). Its tables that grow with the sale share their
    /// chunks with this engine until one side writes to them ([`crate::chunked`]).
    pub fn snapshot_copy(&self) -> SnapshotCopy {
        SnapshotCopy {
            state: self.state.clone(),
            wait: self.wait.clone(),
            refusals: !self.derived.refusals.is_empty(),
        }
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes (any version).
    pub fn restore(bytes: &[u8]) -> Result<Self, CodecError> {
        let (state, wait): (State, Waitlists) = match bytes.split_first() {
            Some((&SNAPSHOT_VERSION_1, rest)) => (decode_all(rest)?, Waitlists::default()),
            Some((&SNAPSHOT_VERSION | &SNAPSHOT_VERSION_REFUSED, rest)) => decode_all(rest)?,
            Some((v, _)) => {
                return Err(CodecError(format!(
                    "snapshot format version {v} is unknown"
                )))
            }
            None => return Err(CodecError("empty snapshot".into())),
        };
        let derived = Derived::rebuild(&state, &wait);
        Ok(Engine {
            state,
            wait,
            derived,
        })
    }
}

/// What a snapshot holds, copied out of an engine by [`Engine::snapshot_copy`].
pub struct SnapshotCopy {
    state: State,
    wait: Waitlists,
    /// Whether some key remembers a refusal (version 3).
    refusals: bool,
}

impl SnapshotCopy {
    /// The bytes [`Engine::snapshot`] gives for the engine it was copied from.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_capacity(0)
    }

    /// [`SnapshotCopy::encode`] into a buffer allocated for `capacity` bytes at once (the
    /// size of the previous snapshot, say), so that it does not grow by doubling, copying
    /// itself and faulting in fresh pages at every step.
    pub fn encode_with_capacity(&self, capacity: usize) -> Vec<u8> {
        encode_snapshot(&self.state, &self.wait, self.refusals, capacity)
    }
}

/// [`Engine::snapshot`] of these parts, into a buffer of `capacity` bytes to begin with:
/// version 3 when some key remembers a refusal, else 1 without waiting lists, else 2.
fn encode_snapshot(state: &State, wait: &Waitlists, refusals: bool, capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity.max(1));
    if refusals {
        buf.push(SNAPSHOT_VERSION_REFUSED);
        encode_into(&(state, wait), &mut buf);
    } else if *wait == Waitlists::default() {
        buf.push(SNAPSHOT_VERSION_1);
        encode_into(state, &mut buf);
    } else {
        buf.push(SNAPSHOT_VERSION);
        encode_into(&(state, wait), &mut buf);
    }
    buf
}

impl Decision {
    /// Appends the versioned encoding to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(match self {
            Decision::Refused(_) => DECISION_VERSION_REFUSED,
            _ => DECISION_VERSION,
        });
        encode_into(self, buf);
    }

    /// Decodes one record written by [`Decision::encode`] (this or an older version).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        match bytes.split_first() {
            Some((&DECISION_VERSION | &DECISION_VERSION_REFUSED, rest)) => decode_all(rest),
            Some((version, _)) => Err(CodecError(format!(
                "decision format version {version} is unknown"
            ))),
            None => Err(CodecError("empty decision record".into())),
        }
    }
}
