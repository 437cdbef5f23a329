//! The engine's state: events with their sections and seats, holds, bookings, users,
//! idempotency keys. Plain data, all of it in a snapshot; the indexes rebuilt from it are
//! in derived.rs, and `Engine` (engine.rs) owns the rules.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use crate::chunked::Chunked;

use serde::{Deserialize, Serialize};

use crate::decision::IdemScope;
use crate::ids::slot;
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
    pub bookings: Vec<u32>,
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

/// A hold (a purchase stores one too, confirmed at once). 40 bytes: its lines live in
/// the shard's line arena ([`State::lines`]), its user is an interned index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Sum of prices.
    pub total_cents: u64,
    /// When placed.
    pub created_at_ms: u64,
    /// Where its lines start in [`State::lines`]: `items` GA lines, then `seats` seats.
    pub lines_at: u64,
    /// `expires_at - created_at` (at most [`crate::limits::HOLD_TTL_MS_MAX`]; 0 for a purchase).
    pub ttl_ms: u32,
    /// Event index.
    pub event: u32,
    /// User index.
    pub user: u32,
    /// GA lines.
    pub items: u8,
    /// Seats.
    pub seats: u8,
    /// Status.
    pub status: Status,
}

const _: () = assert!(std::mem::size_of::<Hold>() == 40);

impl Hold {
    /// When it stops being confirmable.
    pub fn expires_at_ms(&self) -> u64 {
        self.created_at_ms + u64::from(self.ttl_ms)
    }
}

/// A booking; its lines are its hold's. 24 bytes: the payment reference lives in the
/// shard's payment arena ([`State::payment_refs`]), the rare cancellation time in
/// [`State::cancelled_at`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// When made.
    pub created_at_ms: u64,
    /// Where its payment reference starts in [`State::payment_refs`].
    pub payment_at: u32,
    /// Counter of its hold.
    pub hold: u32,
    /// Length of its payment reference in bytes; 0 for none (a given one is never empty).
    pub payment_len: u8,
    /// Whether it is cancelled (when: [`State::cancelled_at`]).
    pub cancelled: bool,
}

const _: () = assert!(std::mem::size_of::<Booking>() == 24);

impl Booking {
    /// Whether it is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

/// What an idempotency key's first request produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A hold extended (counter).
    Extended(u64),
    /// A waiting-list entry made (counter).
    Joined(u64),
    /// A waiting-list entry left (counter).
    Left(u64),
    /// A refusal ([`crate::decision::Refused`]); its keys are counted and forgotten
    /// apart from the others (`Derived::refusals`), so that a crowd of refused retries
    /// never pushes out the memory of a purchase.
    Refused(crate::decision::Refusal),
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
    pub holds: Chunked<Hold>,
    /// Lines of all holds, each hold's contiguous (see [`Hold::lines_at`]).
    pub lines: Chunked<Line>,
    /// Bookings by counter - 1.
    pub bookings: Chunked<Booking>,
    /// Payment references of all bookings, concatenated (at most
    /// [`crate::limits::PAYMENT_REF_BYTES_PER_SHARD_MAX`] bytes).
    pub payment_refs: String,
    /// Booking counter → when it was cancelled.
    pub cancelled_at: BTreeMap<u32, u64>,
    /// Users by index.
    pub users: Vec<String>,
    /// Booking counters of each user, in creation order.
    pub user_bookings: Vec<Vec<u32>>,
    /// Idempotency keys.
    pub idem: BTreeMap<(IdemScope, String), IdemEntry>,
    /// Keys of successes in recording order, for retention (a refusal's key is in
    /// `Derived::refusals`).
    pub idem_order: VecDeque<(u64, IdemScope, String)>,
}

impl State {
    /// The hold with this counter.
    pub fn hold(&self, counter: u32) -> &Hold {
        &self.holds[slot(counter)]
    }

    /// The hold with this counter, to change.
    pub fn hold_mut(&mut self, counter: u32) -> &mut Hold {
        &mut self.holds[slot(counter)]
    }

    /// The booking with this counter.
    pub fn booking(&self, counter: u32) -> &Booking {
        &self.bookings[slot(counter)]
    }

    /// The booking with this counter, to change.
    pub fn booking_mut(&mut self, counter: u32) -> &mut Booking {
        &mut self.bookings[slot(counter)]
    }

    /// A hold's GA lines and seats.
    pub fn lines_of(&self, hold: &Hold) -> (Cow<'_, [Line]>, Cow<'_, [Line]>) {
        hold_lines(&self.lines, hold)
    }

    /// Tickets in a hold.
    pub fn tickets_of(&self, hold: &Hold) -> u32 {
        let (items, seats) = self.lines_of(hold);
        tickets(&items, &seats)
    }

    /// Whether an expiry entry is current: its hold is live and still expires then (an
    /// extension leaves the entry of the old time behind, stale).
    pub fn is_current(&self, (expires_at_ms, counter): (u64, u32)) -> bool {
        let hold = self.hold(counter);
        hold.status == Status::Held && hold.expires_at_ms() == expires_at_ms
    }

    /// A booking's payment reference.
    pub fn payment_ref(&self, booking: &Booking) -> Option<&str> {
        let at = booking.payment_at as usize;
        (booking.payment_len > 0)
            .then(|| &self.payment_refs[at..at + usize::from(booking.payment_len)])
    }
}

/// A line: `(section index, qty)` for GA, `(section index, seat index)` for a seat.
pub type Line = (u16, u32);

/// A hold's GA lines and seats in the line arena `lines`.
pub fn hold_lines<'a>(lines: &'a Chunked<Line>, hold: &Hold) -> (Cow<'a, [Line]>, Cow<'a, [Line]>) {
    let at = hold.lines_at as usize;
    let mid = at + usize::from(hold.items);
    let end = mid + usize::from(hold.seats);
    (lines.range(at, mid), lines.range(mid, end))
}

/// Tickets in GA lines plus seats.
pub fn tickets(items: &[Line], seats: &[Line]) -> u32 {
    items.iter().map(|&(_, q)| q).sum::<u32>() + seats.len() as u32
}
