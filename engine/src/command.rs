//! What a client asks of a shard. A command is decided (pure) into a [`crate::Decision`]
//! or a [`crate::Rejection`]; only decisions change state and reach the log.

use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, EntryId, HoldId};

/// Who sends a command: the admin, or a user acting for themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The admin token: may act on any hold or booking.
    Admin,
    /// A user token whose subject is this user id: may act only on their own.
    User(String),
}

/// An `Idempotency-Key` and the fingerprint of the request it came with
/// (see [`crate::fingerprint`]). Keys are scoped to the actor's user (or the admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    /// The client's key, at most [`crate::limits::IDEMPOTENCY_KEY_LEN_MAX`] bytes.
    pub key: String,
    /// A stable hash of method, route and body: the same key with another fingerprint
    /// is refused as `idempotency_key_reused`.
    pub fingerprint: u64,
}

/// A state-changing request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create an event with its sections (admin).
    CreateEvent(NewEvent),
    /// Hold inventory for a user until `expires_at`.
    PlaceHold(NewHold),
    /// Hold and confirm as one decision: a booking at once.
    Purchase(NewHold),
    /// Turn a live hold into a booking.
    ConfirmHold {
        /// Who asks (must own the hold, or be the admin).
        actor: Actor,
        /// The hold.
        hold_id: HoldId,
        /// The payment provider's reference, stored on the booking.
        payment_ref: Option<String>,
        /// Optional idempotency key.
        idempotency: Option<Idempotency>,
    },
    /// Give a live hold's inventory back now.
    ReleaseHold {
        /// Who asks.
        actor: Actor,
        /// The hold.
        hold_id: HoldId,
        /// Optional idempotency key.
        idempotency: Option<Idempotency>,
    },
    /// Cancel a booking; its inventory returns to sale.
    CancelBooking {
        /// Who asks.
        actor: Actor,
        /// The booking.
        booking_id: BookingId,
        /// Optional idempotency key.
        idempotency: Option<Idempotency>,
    },
    /// Move a live hold's `expires_at` to now + `ttl_ms` (longer or shorter), never past
    /// its `created_at` + [`crate::limits::HOLD_LIFETIME_MS_MAX`].
    ExtendHold {
        /// Who asks (must own the hold, or be the admin).
        actor: Actor,
        /// The hold.
        hold_id: HoldId,
        /// The new TTL from now.
        ttl_ms: u64,
        /// Optional idempotency key.
        idempotency: Option<Idempotency>,
    },
    /// Hold seats picked by the engine (best available), plus any GA items.
    PlaceHoldBest(NewHold, Box<BestAvailable>),
    /// Buy seats picked by the engine (best available), plus any GA items.
    PurchaseBest(NewHold, Box<BestAvailable>),
    /// Create an event with sale-day options (an offer TTL for its waiting lists).
    CreateEventWith(NewEvent, EventOptions),
    /// Join a section's waiting list.
    JoinWaitlist(NewEntry),
    /// Leave a waiting list; an outstanding offer is released and passed on.
    LeaveWaitlist {
        /// Who asks (must own the entry, or be the admin).
        actor: Actor,
        /// The entry.
        entry_id: EntryId,
        /// Optional idempotency key.
        idempotency: Option<Idempotency>,
    },
}

/// Sale-day options of a new event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventOptions {
    /// TTL of a waiting-list offer; `None` means the event's hold TTL.
    pub offer_ttl_ms: Option<u64>,
}

/// Best available: `qty` seats picked by the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestAvailable {
    /// The seated section; `None` tries the event's seated sections in order.
    pub section_id: Option<String>,
    /// Seats wanted, at least 1.
    pub qty: u32,
    /// Whether seats may come from several rows when no row has `qty` together.
    pub allow_split: bool,
}

/// A waiting-list entry to add.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    /// Who asks.
    pub actor: Actor,
    /// The event.
    pub event_id: String,
    /// For whom.
    pub user_id: String,
    /// The section.
    pub section_id: String,
    /// Tickets wanted, all or nothing.
    pub qty: u32,
    /// Optional idempotency key.
    pub idempotency: Option<Idempotency>,
}

/// An event to create. The server fills `id` when the client gave none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// `[A-Za-z0-9_-]{1,64}`, unique on its shard.
    pub id: String,
    /// Display name, 1 to [`crate::limits::NAME_LEN_MAX`] characters.
    pub name: String,
    /// When the event starts, ms since the Unix epoch (informational).
    pub starts_at_ms: Option<i64>,
    /// Cap on tickets one user may hold plus own; `None` means no cap.
    pub max_per_user: Option<u32>,
    /// Default hold TTL; `None` means [`crate::limits::HOLD_TTL_MS_DEFAULT`].
    pub hold_ttl_ms: Option<u64>,
    /// At least one section.
    pub sections: Vec<NewSection>,
    /// Optional idempotency key (scoped to the admin).
    pub idempotency: Option<Idempotency>,
}

/// A section of a new event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSection {
    /// `[A-Za-z0-9_-]{1,64}`; `None` gives `s1`, `s2`, ... by position.
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Price of one ticket in minor units.
    pub price_cents: u64,
    /// General admission or seated.
    pub layout: Layout,
}

/// How a section sells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// General admission: a capacity counter.
    General {
        /// Tickets in the section.
        capacity: u32,
    },
    /// Assigned seats: rows of numbered seats `<label>-<n>`, n from 1.
    Seated {
        /// The rows; labels are unique across the whole event.
        rows: Vec<NewRow>,
    },
}

/// A row of a seated section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRow {
    /// `[A-Za-z0-9]{1,8}`, unique within the event.
    pub label: String,
    /// Seats in the row, numbered 1..=count.
    pub count: u32,
}

/// A hold (or, through [`Command::Purchase`], a purchase) to place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHold {
    /// Who asks.
    pub actor: Actor,
    /// The event.
    pub event_id: String,
    /// For whom: the user's own id, or the one an admin names.
    pub user_id: String,
    /// GA quantities, at most one line per section.
    pub items: Vec<ItemRequest>,
    /// Named seats such as `A-12`, no duplicates.
    pub seats: Vec<String>,
    /// Hold TTL; `None` means the event's `hold_ttl_ms`. A purchase leaves no hold: it
    /// checks the TTL as a hold does (a bad one is refused) and otherwise ignores it.
    pub ttl_ms: Option<u64>,
    /// Payment reference (purchases only; ignored for holds).
    pub payment_ref: Option<String>,
    /// Optional idempotency key.
    pub idempotency: Option<Idempotency>,
}

/// A quantity of a GA section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRequest {
    /// The section's id.
    pub section_id: String,
    /// At least 1.
    pub qty: u32,
}

/// Which bookings to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookingQuery {
    /// Only this event's bookings.
    pub event_id: Option<String>,
    /// Only this user's bookings.
    pub user_id: Option<String>,
    /// Only bookings strictly older than this cursor (created_at_ms, id).
    pub before: Option<(u64, BookingId)>,
    /// At most this many (capped at [`crate::limits::PAGE_LIMIT_MAX`]).
    pub limit: usize,
}

/// FNV-1a over the bytes: a stable fingerprint for idempotency (the same on every
/// machine and release, unlike `std`'s randomly seeded hasher).
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate parts so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
