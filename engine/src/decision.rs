//! What changed: the log's records. Each decision is the complete outcome of a command,
//! so replay applies it without re-running any rule. Variants are append-only; every
//! encoded decision starts with a format version byte (the encoding is in codec.rs;
//! `engine/tests/compat.rs` holds the bytes of every variant).

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::ids::{BookingId, EntryId, HoldId};
use crate::rejection::Rejection;

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

/// A state change, as logged. Each variant carries its own struct (the bytes are those of
/// the fields in order, as a struct variant's were: `engine/tests/compat.rs` holds them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// An event was created.
    EventCreated(EventCreated),
    /// A hold was placed.
    HoldPlaced(HoldPlaced),
    /// A purchase: a hold made and confirmed at once.
    Purchased(Purchased),
    /// A hold became a booking.
    HoldConfirmed(HoldConfirmed),
    /// A hold was released by its owner.
    HoldReleased(HoldReleased),
    /// A hold's time ran out.
    HoldExpired(HoldExpired),
    /// A booking was cancelled.
    BookingCancelled(BookingCancelled),
    // Sale-day additions: appended, so every earlier variant keeps its bytes.
    /// A live hold's expiry moved.
    HoldExtended(HoldExtended),
    /// An event was created with sale-day options.
    EventCreatedWith(EventCreatedWith),
    /// A user joined a section's waiting list (at its end).
    WaitlistJoined(WaitlistJoined),
    /// A user left a waiting list (an outstanding offer is released), and what followed.
    WaitlistLeft(WaitlistLeft),
    /// A release, expiry or cancellation (`base`) whose tickets went to a waiting list,
    /// with what the waiting list did, in order: one decision, one record.
    Cascaded(Cascaded),
    /// A command with an `Idempotency-Key` refused for a reason a later state could
    /// change (sold out now, free later): nothing else changes, but the key remembers the
    /// refusal, so its retry gets the same answer, also after a restart.
    Refused(Refused),
}

/// A refusal remembered with its idempotency key ([`Decision::Refused`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Engine time.
    pub at_ms: u64,
    /// The key and the request it came with.
    pub idem: Box<IdemTag>,
    /// The answer.
    pub refusal: Refusal,
}

/// The refusals a key remembers: those whose answer depends on a state that can change,
/// so that a retry could otherwise get another answer. The others need no memory: input
/// errors answer the same for the same request, and a hold, booking or entry that is no
/// longer active never becomes active again. Not remembered on purpose: `not_found` (a
/// purchase sent a moment before its event is created gets the event once it exists) and
/// `over_capacity` (503, `Retry-After`: it asks for a retry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// [`Rejection::SoldOut`].
    SoldOut {
        /// The section that ran out.
        section_id: String,
        /// Tickets available there.
        available: u32,
    },
    /// [`Rejection::SeatTaken`].
    SeatTaken {
        /// The first seat not free.
        seat: String,
    },
    /// [`Rejection::LimitExceeded`].
    LimitExceeded {
        /// The event's cap.
        max_per_user: u32,
        /// What the user held plus owned.
        current: u32,
    },
    /// [`Rejection::NoAdjacentSeats`].
    NoAdjacentSeats {
        /// The section with the most free seats.
        section_id: String,
        /// Its free seats.
        available: u32,
    },
    /// [`Rejection::AlreadyWaiting`].
    AlreadyWaiting {
        /// The user's live entry.
        entry_id: EntryId,
    },
    /// [`Rejection::TicketsAvailable`].
    TicketsAvailable {
        /// Tickets available in the section.
        available: u32,
    },
    /// [`Rejection::ExtensionLimit`] (the hold may expire later, which would answer
    /// `hold_expired`).
    ExtensionLimit {
        /// The latest `expires_at` allowed.
        latest_ms: u64,
    },
}

impl Refusal {
    /// The remembered form of `rejection`, if a key remembers it.
    pub fn of(rejection: &Rejection) -> Option<Refusal> {
        Some(match rejection.clone() {
            Rejection::SoldOut {
                section_id,
                available,
            } => Refusal::SoldOut {
                section_id,
                available,
            },
            Rejection::SeatTaken { seat } => Refusal::SeatTaken { seat },
            Rejection::LimitExceeded {
                max_per_user,
                current,
            } => Refusal::LimitExceeded {
                max_per_user,
                current,
            },
            Rejection::NoAdjacentSeats {
                section_id,
                available,
            } => Refusal::NoAdjacentSeats {
                section_id,
                available,
            },
            Rejection::AlreadyWaiting { entry_id } => Refusal::AlreadyWaiting { entry_id },
            Rejection::TicketsAvailable { available } => Refusal::TicketsAvailable { available },
            Rejection::ExtensionLimit { latest_ms } => Refusal::ExtensionLimit { latest_ms },
            Rejection::InvalidInput { .. }
            | Rejection::NotFound { .. }
            | Rejection::EventExists
            | Rejection::HoldExpired
            | Rejection::HoldNotActive { .. }
            | Rejection::BookingNotActive
            | Rejection::IdempotencyKeyReused
            | Rejection::OverCapacity(_)
            | Rejection::EntryNotActive { .. } => return None,
        })
    }
}

impl From<&Refusal> for Rejection {
    fn from(refusal: &Refusal) -> Self {
        match refusal.clone() {
            Refusal::SoldOut {
                section_id,
                available,
            } => Rejection::SoldOut {
                section_id,
                available,
            },
            Refusal::SeatTaken { seat } => Rejection::SeatTaken { seat },
            Refusal::LimitExceeded {
                max_per_user,
                current,
            } => Rejection::LimitExceeded {
                max_per_user,
                current,
            },
            Refusal::NoAdjacentSeats {
                section_id,
                available,
            } => Rejection::NoAdjacentSeats {
                section_id,
                available,
            },
            Refusal::AlreadyWaiting { entry_id } => Rejection::AlreadyWaiting { entry_id },
            Refusal::TicketsAvailable { available } => Rejection::TicketsAvailable { available },
            Refusal::ExtensionLimit { latest_ms } => Rejection::ExtensionLimit { latest_ms },
        }
    }
}

/// An event was created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCreated {
    /// Engine time.
    pub at_ms: u64,
    /// The event.
    pub event: Box<EventSpec>,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A hold was placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlaced {
    /// Engine time.
    pub at_ms: u64,
    /// The new hold.
    pub hold: HoldId,
    /// Event index on the shard.
    pub event: u32,
    /// For whom.
    pub user: UserRef,
    /// What it holds.
    pub lines: Lines,
    /// Sum of prices.
    pub total_cents: u64,
    /// When it expires.
    pub expires_at_ms: u64,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A purchase: a hold made and confirmed at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchased {
    /// Engine time.
    pub at_ms: u64,
    /// The hold record it creates (status confirmed).
    pub hold: HoldId,
    /// The booking.
    pub booking: BookingId,
    /// Event index on the shard.
    pub event: u32,
    /// The buyer.
    pub user: UserRef,
    /// What was bought.
    pub lines: Lines,
    /// Sum of prices.
    pub total_cents: u64,
    /// Payment reference.
    pub payment_ref: Option<String>,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A hold became a booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldConfirmed {
    /// Engine time.
    pub at_ms: u64,
    /// The hold.
    pub hold: HoldId,
    /// The new booking.
    pub booking: BookingId,
    /// Payment reference.
    pub payment_ref: Option<String>,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A hold was released by its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldReleased {
    /// Engine time.
    pub at_ms: u64,
    /// The hold.
    pub hold: HoldId,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A hold's time ran out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldExpired {
    /// Engine time.
    pub at_ms: u64,
    /// The hold.
    pub hold: HoldId,
}

/// A booking was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingCancelled {
    /// Engine time.
    pub at_ms: u64,
    /// The booking.
    pub booking: BookingId,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A live hold's expiry moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldExtended {
    /// Engine time.
    pub at_ms: u64,
    /// The hold.
    pub hold: HoldId,
    /// Its new `expires_at`.
    pub expires_at_ms: u64,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// An event was created with sale-day options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCreatedWith {
    /// Engine time.
    pub at_ms: u64,
    /// The event.
    pub event: Box<EventSpec>,
    /// TTL of its waiting-list offers.
    pub offer_ttl_ms: u64,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A user joined a section's waiting list (at its end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistJoined {
    /// Engine time.
    pub at_ms: u64,
    /// The new entry.
    pub entry: EntryId,
    /// Event index on the shard.
    pub event: u32,
    /// Section index.
    pub section: u16,
    /// For whom.
    pub user: UserRef,
    /// Tickets wanted.
    pub qty: u32,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A user left a waiting list (an outstanding offer is released), and what followed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistLeft {
    /// Engine time.
    pub at_ms: u64,
    /// The entry.
    pub entry: EntryId,
    /// What the waiting list did next, in order.
    pub steps: Vec<WaitStep>,
    /// Idempotency key, if any.
    pub idem: Option<Box<IdemTag>>,
}

/// A release, expiry or cancellation (`base`) whose tickets went to a waiting list,
/// with what the waiting list did, in order: one decision, one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cascaded {
    /// The release, expiry or cancellation, as it would be logged alone.
    pub base: Box<Decision>,
    /// Event index of the waiting lists.
    pub event: u32,
    /// What the waiting lists did, in order.
    pub steps: Vec<WaitStep>,
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
    /// Engine time of the decision, ms since the Unix epoch.
    pub fn at_ms(&self) -> u64 {
        match self {
            Decision::EventCreated(EventCreated { at_ms, .. })
            | Decision::HoldPlaced(HoldPlaced { at_ms, .. })
            | Decision::Purchased(Purchased { at_ms, .. })
            | Decision::HoldConfirmed(HoldConfirmed { at_ms, .. })
            | Decision::HoldReleased(HoldReleased { at_ms, .. })
            | Decision::HoldExpired(HoldExpired { at_ms, .. })
            | Decision::BookingCancelled(BookingCancelled { at_ms, .. })
            | Decision::HoldExtended(HoldExtended { at_ms, .. })
            | Decision::EventCreatedWith(EventCreatedWith { at_ms, .. })
            | Decision::WaitlistJoined(WaitlistJoined { at_ms, .. })
            | Decision::WaitlistLeft(WaitlistLeft { at_ms, .. })
            | Decision::Refused(Refused { at_ms, .. }) => *at_ms,
            Decision::Cascaded(Cascaded { base, .. }) => base.at_ms(),
        }
    }

    /// The idempotency key it carries, if any.
    pub fn idem(&self) -> Option<&IdemTag> {
        match self {
            Decision::EventCreated(EventCreated { idem, .. })
            | Decision::HoldPlaced(HoldPlaced { idem, .. })
            | Decision::Purchased(Purchased { idem, .. })
            | Decision::HoldConfirmed(HoldConfirmed { idem, .. })
            | Decision::HoldReleased(HoldReleased { idem, .. })
            | Decision::BookingCancelled(BookingCancelled { idem, .. })
            | Decision::HoldExtended(HoldExtended { idem, .. })
            | Decision::EventCreatedWith(EventCreatedWith { idem, .. })
            | Decision::WaitlistJoined(WaitlistJoined { idem, .. })
            | Decision::WaitlistLeft(WaitlistLeft { idem, .. }) => idem.as_deref(),
            Decision::Cascaded(Cascaded { base, .. }) => base.idem(),
            Decision::Refused(Refused { idem, .. }) => Some(idem),
            Decision::HoldExpired(_) => None,
        }
    }
}
