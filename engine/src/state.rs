//! The engine's state: events with their sections and seats, holds, bookings, users,
//! idempotency keys. Plain data; `Engine` (engine.rs) owns the rules.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use crate::decision::{IdemScope, Lines};
use crate::seat::SeatState;

/// A row of a seated section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Label, unique within the event.
    pub label: String,
    /// Seats 1..=count.
    pub count: u32,
    /// Index of its seat 1 in the section's seat array.
    pub start: u32,
}

/// A section: counts plus, for a seated one, its rows and seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Section id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ticket price.
    pub price_cents: u64,
    /// Tickets in all.
    pub capacity: u32,
    /// In live holds.
    pub held: u32,
    /// In confirmed bookings.
    pub sold: u32,
    /// Rows (empty for GA).
    pub rows: Vec<Row>,
    /// One state per seat (empty for GA).
    pub seats: Vec<SeatState>,
}

impl Section {
    /// Free tickets.
    pub fn available(&self) -> u32 {
        self.capacity - self.held - self.sold
    }
    /// Whether it has numbered seats.
    pub fn is_seated(&self) -> bool {
        !self.rows.is_empty()
    }
    /// `A-12` for a seat index.
    pub fn seat_label(&self, seat: u32) -> String {
        let row = &self.rows[self.rows.partition_point(|r| r.start <= seat) - 1];
        format!("{}-{}", row.label, seat - row.start + 1)
    }
}

/// An event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
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
    /// Creation time.
    pub created_at_ms: u64,
    /// Sections in creation order.
    pub sections: Vec<Section>,
    /// Row label → (section index, row index).
    pub rows_by_label: BTreeMap<String, (u16, u32)>,
    /// Booking counters in creation order.
    pub bookings: Vec<u64>,
    /// User index → tickets in live holds plus confirmed bookings.
    pub per_user: BTreeMap<u32, u32>,
}

impl Event {
    /// Finds `A-12`: (section index, seat index).
    pub fn find_seat(&self, seat: &str) -> Option<(u16, u32)> {
        let (label, number) = seat.rsplit_once('-')?;
        if number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number: u32 = number.parse().ok()?;
        let &(section, row) = self.rows_by_label.get(label)?;
        let row = &self.sections[section as usize].rows[row as usize];
        (1..=row.count)
            .contains(&number)
            .then_some((section, row.start + number - 1))
    }
}

/// A hold's stored status (a due `Held` hold reads as expired).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Live.
    Held,
    /// Became a booking.
    Confirmed,
    /// Released by its owner.
    Released,
    /// Expired.
    Expired,
}

/// A hold (a purchase stores one too, confirmed at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Event index.
    pub event: u32,
    /// User index.
    pub user: u32,
    /// What it holds.
    pub lines: Lines,
    /// Sum of prices.
    pub total_cents: u64,
    /// When placed.
    pub created_at_ms: u64,
    /// When it expires.
    pub expires_at_ms: u64,
    /// Status.
    pub status: Status,
}

/// A booking; its lines are its hold's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Counter of its hold.
    pub hold: u64,
    /// When made.
    pub created_at_ms: u64,
    /// When cancelled.
    pub cancelled_at_ms: Option<u64>,
    /// Payment reference.
    pub payment_ref: Option<Box<str>>,
}

/// What an idempotency key's first request produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdemOutcome {
    /// An event (index).
    EventCreated(u32),
    /// A hold placed (counter).
    HoldPlaced(u64),
    /// A booking bought at once (counter).
    Purchased(u64),
    /// A hold confirmed into a booking (booking counter).
    Confirmed(u64),
    /// A hold released (counter).
    Released(u64),
    /// A booking cancelled (counter).
    Cancelled(u64),
}

/// A remembered key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemEntry {
    /// Fingerprint of the first request.
    pub fingerprint: u64,
    /// When it was recorded.
    pub at_ms: u64,
    /// What it produced.
    pub outcome: IdemOutcome,
}

/// Everything a snapshot holds; lookup indexes are rebuilt from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The shard number.
    pub shard: u16,
    /// Time of the last applied decision.
    pub now_ms: u64,
    /// Events by index.
    pub events: Vec<Event>,
    /// Event id → index.
    pub event_index: BTreeMap<String, u32>,
    /// Holds by counter - 1.
    pub holds: Vec<Hold>,
    /// Bookings by counter - 1.
    pub bookings: Vec<Booking>,
    /// Users by index.
    pub users: Vec<String>,
    /// Booking counters of each user, in creation order.
    pub user_bookings: Vec<Vec<u64>>,
    /// Idempotency keys.
    pub idem: BTreeMap<(IdemScope, String), IdemEntry>,
    /// Keys in recording order, for retention.
    pub idem_order: VecDeque<(u64, IdemScope, String)>,
}

/// Indexes derived from [`State`], rebuilt on restore.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derived {
    /// User id → index.
    pub user_index: FxHashMap<String, u32>,
    /// (expires_at_ms, hold counter) of every live hold.
    pub expiry: BTreeSet<(u64, u64)>,
}

impl Derived {
    /// Rebuilds the indexes from the state.
    pub fn rebuild(state: &State) -> Self {
        Derived {
            user_index: state
                .users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.clone(), i as u32))
                .collect(),
            expiry: state
                .holds
                .iter()
                .enumerate()
                .filter(|(_, h)| h.status == Status::Held)
                .map(|(i, h)| (h.expires_at_ms, i as u64 + 1))
                .collect(),
        }
    }
}
