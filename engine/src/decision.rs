//! What changed: the log's records. Each decision is the complete outcome of a command,
//! so replay applies it without re-running any rule. Variants are append-only; every
//! encoded decision starts with a format version byte.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::codec;
use crate::engine::CodecError;
use crate::ids::{BookingId, EntryId, HoldId};

/// Who an idempotency key belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IdemScope {
    /// The admin's keys.
    Admin,
    /// A user's keys.
    User(String),
}

/// An idempotency key remembered with a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemTag {
    /// Whose key.
    pub scope: IdemScope,
    /// The key.
    pub key: String,
    /// Fingerprint of the request it came with.
    pub fingerprint: u64,
}

/// A section of a created event, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSpec {
    /// Section id (generated ones filled in).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ticket price.
    pub price_cents: u64,
    /// `None` for general admission with `capacity`; rows for a seated section.
    pub rows: Option<Vec<(String, u32)>>,
    /// GA capacity (the seat count for a seated section).
    pub capacity: u32,
}

/// A created event, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSpec {
    /// Event id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Start time.
    pub starts_at_ms: Option<i64>,
    /// Per-user cap.
    pub max_per_user: Option<u32>,
    /// Default hold TTL.
    pub hold_ttl_ms: u64,
    /// Sections.
    pub sections: Vec<SectionSpec>,
}

/// The lines of a hold: GA `(section, qty)` and seats `(section, seat index)`, in request
/// order. Stored inline for the common small holds, so deciding and replaying a one-line
/// GA hold allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lines {
    /// GA quantities by section index.
    pub items: SmallVec<[(u16, u32); 1]>,
    /// Seats by section index and seat index within the section.
    pub seats: SmallVec<[(u16, u32); 4]>,
}

impl Lines {
    /// Tickets in all.
    pub fn tickets(&self) -> u32 {
        self.items.iter().map(|&(_, q)| q).sum::<u32>() + self.seats.len() as u32
    }
}

/// The user a hold is for: an index into the shard's interned users when it is already
/// known (the common case: no string in the decision), or the id of a new user, whom
/// applying the decision interns with the next index. Interning happens in apply order,
/// so replay assigns the same indexes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserRef {
    /// A user the shard has seen, by index.
    Known(u32),
    /// A user seen for the first time.
    New(String),
}

/// A state change, as logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// An event was created.
    EventCreated {
        /// Engine time.
        at_ms: u64,
        /// The event.
        event: Box<EventSpec>,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A hold was placed.
    HoldPlaced {
        /// Engine time.
        at_ms: u64,
        /// The new hold.
        hold: HoldId,
        /// Event index on the shard.
        event: u32,
        /// For whom.
        user: UserRef,
        /// What it holds.
        lines: Lines,
        /// Sum of prices.
        total_cents: u64,
        /// When it expires.
        expires_at_ms: u64,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A purchase: a hold made and confirmed at once.
    Purchased {
        /// Engine time.
        at_ms: u64,
        /// The hold record it creates (status confirmed).
        hold: HoldId,
        /// The booking.
        booking: BookingId,
        /// Event index on the shard.
        event: u32,
        /// The buyer.
        user: UserRef,
        /// What was bought.
        lines: Lines,
        /// Sum of prices.
        total_cents: u64,
        /// Payment reference.
        payment_ref: Option<String>,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A hold became a booking.
    HoldConfirmed {
        /// Engine time.
        at_ms: u64,
        /// The hold.
        hold: HoldId,
        /// The new booking.
        booking: BookingId,
        /// Payment reference.
        payment_ref: Option<String>,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A hold was released by its owner.
    HoldReleased {
        /// Engine time.
        at_ms: u64,
        /// The hold.
        hold: HoldId,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A hold's time ran out.
    HoldExpired {
        /// Engine time.
        at_ms: u64,
        /// The hold.
        hold: HoldId,
    },
    /// A booking was cancelled.
    BookingCancelled {
        /// Engine time.
        at_ms: u64,
        /// The booking.
        booking: BookingId,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    // Sale-day additions: appended, so every earlier variant keeps its bytes.
    /// A live hold's expiry moved.
    HoldExtended {
        /// Engine time.
        at_ms: u64,
        /// The hold.
        hold: HoldId,
        /// Its new `expires_at`.
        expires_at_ms: u64,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// An event was created with sale-day options.
    EventCreatedWith {
        /// Engine time.
        at_ms: u64,
        /// The event.
        event: Box<EventSpec>,
        /// TTL of its waiting-list offers.
        offer_ttl_ms: u64,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A user joined a section's waiting list (at its end).
    WaitlistJoined {
        /// Engine time.
        at_ms: u64,
        /// The new entry.
        entry: EntryId,
        /// Event index on the shard.
        event: u32,
        /// Section index.
        section: u16,
        /// For whom.
        user: UserRef,
        /// Tickets wanted.
        qty: u32,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A user left a waiting list (an outstanding offer is released), and what followed.
    WaitlistLeft {
        /// Engine time.
        at_ms: u64,
        /// The entry.
        entry: EntryId,
        /// What the waiting list did next, in order.
        steps: Vec<WaitStep>,
        /// Idempotency key, if any.
        idem: Option<Box<IdemTag>>,
    },
    /// A release, expiry or cancellation (`base`) whose tickets went to a waiting list,
    /// with what the waiting list did, in order: one decision, one record.
    Cascaded {
        /// The release, expiry or cancellation, as it would be logged alone.
        base: Box<Decision>,
        /// Event index of the waiting lists.
        event: u32,
        /// What the waiting lists did, in order.
        steps: Vec<WaitStep>,
    },
}

/// One thing a waiting list did within a decision, as logged (replay applies these; it
/// never re-runs the waiting list's rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitStep {
    /// Free tickets of a section set aside for its waiting list (they count as held): a
    /// GA quantity, or seat indexes.
    SetAside {
        /// Section index.
        section: u16,
        /// GA tickets (0 for a seated section).
        qty: u32,
        /// Seat indexes (empty for GA).
        seats: Vec<u32>,
    },
    /// An offer: a hold for the entry's user, from set-aside tickets.
    Offered {
        /// The entry.
        entry: EntryId,
        /// The new hold.
        hold: HoldId,
        /// What it holds.
        lines: Lines,
        /// Sum of prices.
        total_cents: u64,
        /// When the offer expires.
        expires_at_ms: u64,
    },
    /// An entry whose user could not take its tickets (`max_per_user`): it ends expired.
    PassedOver {
        /// The entry.
        entry: EntryId,
    },
    /// Set-aside tickets back on sale (no entry waits).
    BackOnSale {
        /// Section index.
        section: u16,
        /// GA tickets (0 for a seated section).
        qty: u32,
        /// Seat indexes (empty for GA).
        seats: Vec<u32>,
    },
}

impl Decision {
    /// Appends the versioned encoding to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(codec::DECISION_VERSION);
        codec::encode_into(self, buf);
    }

    /// Decodes one record written by [`Decision::encode`] (this or an older version).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        match bytes.split_first() {
            Some((&codec::DECISION_VERSION, rest)) => codec::decode_all(rest),
            Some((version, _)) => Err(CodecError(format!(
                "decision format version {version} is unknown"
            ))),
            None => Err(CodecError("empty decision record".into())),
        }
    }

    /// Engine time of the decision, ms since the Unix epoch.
    pub fn at_ms(&self) -> u64 {
        match self {
            Decision::EventCreated { at_ms, .. }
            | Decision::HoldPlaced { at_ms, .. }
            | Decision::Purchased { at_ms, .. }
            | Decision::HoldConfirmed { at_ms, .. }
            | Decision::HoldReleased { at_ms, .. }
            | Decision::HoldExpired { at_ms, .. }
            | Decision::BookingCancelled { at_ms, .. }
            | Decision::HoldExtended { at_ms, .. }
            | Decision::EventCreatedWith { at_ms, .. }
            | Decision::WaitlistJoined { at_ms, .. }
            | Decision::WaitlistLeft { at_ms, .. } => *at_ms,
            Decision::Cascaded { base, .. } => base.at_ms(),
        }
    }

    /// The idempotency key it carries, if any.
    pub fn idem(&self) -> Option<&IdemTag> {
        match self {
            Decision::EventCreated { idem, .. }
            | Decision::HoldPlaced { idem, .. }
            | Decision::Purchased { idem, .. }
            | Decision::HoldConfirmed { idem, .. }
            | Decision::HoldReleased { idem, .. }
            | Decision::BookingCancelled { idem, .. }
            | Decision::HoldExtended { idem, .. }
            | Decision::EventCreatedWith { idem, .. }
            | Decision::WaitlistJoined { idem, .. }
            | Decision::WaitlistLeft { idem, .. } => idem.as_deref(),
            Decision::Cascaded { base, .. } => base.idem(),
            Decision::HoldExpired { .. } => None,
        }
    }
}
