//! What reads and replies show: plain data, times in ms since the Unix epoch. The server
//! turns these into the JSON of the HTTP API.

use serde::{Deserialize, Serialize};

use crate::ids::{BookingId, EntryId, HoldId};

/// A hold's status as a reader sees it at `now`: a hold past `expires_at` shows
/// `Expired` even before the sweep has run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    /// Live: its inventory is reserved until `expires_at`.
    Held,
    /// Turned into a booking.
    Confirmed,
    /// Given back by its owner.
    Released,
    /// Its time ran out.
    Expired,
}

impl HoldStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }
}

/// A booking's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookingStatus {
    /// Sold.
    Confirmed,
    /// Cancelled; its inventory went back on sale.
    Cancelled,
}

impl BookingStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Confirmed => "confirmed",
            BookingStatus::Cancelled => "cancelled",
        }
    }
}

/// A GA line of a hold or booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemView {
    /// The section.
    pub section_id: String,
    /// Tickets.
    pub qty: u32,
}

/// A hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    /// Its id.
    pub id: HoldId,
    /// The event.
    pub event_id: String,
    /// The user it is for.
    pub user_id: String,
    /// Status at the time of the read.
    pub status: HoldStatus,
    /// GA lines.
    pub items: Vec<ItemView>,
    /// Seat ids such as `A-12`, in request order.
    pub seats: Vec<String>,
    /// Sum of the ticket prices.
    pub total_cents: u64,
    /// When it was placed.
    pub created_at_ms: u64,
    /// When it stops being confirmable.
    pub expires_at_ms: u64,
}

/// A booking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingView {
    /// Its id.
    pub id: BookingId,
    /// The hold it came from (a purchase makes a hold and confirms it in one decision).
    pub hold_id: HoldId,
    /// The event.
    pub event_id: String,
    /// The buyer.
    pub user_id: String,
    /// Confirmed or cancelled.
    pub status: BookingStatus,
    /// GA lines.
    pub items: Vec<ItemView>,
    /// Seat ids.
    pub seats: Vec<String>,
    /// Sum of the ticket prices.
    pub total_cents: u64,
    /// The payment reference given at confirmation.
    pub payment_ref: Option<String>,
    /// When it was made.
    pub created_at_ms: u64,
    /// When it was cancelled, if it was.
    pub cancelled_at_ms: Option<u64>,
}

/// General admission or seated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionKind {
    /// A capacity counter.
    General,
    /// Numbered seats.
    Seated,
}

/// A row of a seated section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowView {
    /// Row label.
    pub label: String,
    /// Seats 1..=count.
    pub count: u32,
}

/// A section with its live counts: `available + held + sold == capacity`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionView {
    /// Section id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ticket price in minor units.
    pub price_cents: u64,
    /// General or seated.
    pub kind: SectionKind,
    /// Tickets in all.
    pub capacity: u32,
    /// Free to hold now.
    pub available: u32,
    /// In live holds.
    pub held: u32,
    /// In confirmed bookings.
    pub sold: u32,
    /// Rows, for a seated section (empty for GA).
    pub rows: Vec<RowView>,
    /// Waiting-list entries waiting.
    pub waiting: u32,
    /// Returned tickets set aside for the waiting list, not yet in an offer (part of `held`).
    pub set_aside: u32,
}

/// An event with its sections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// Event id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Start time, if given.
    pub starts_at_ms: Option<i64>,
    /// Per-user cap, if any.
    pub max_per_user: Option<u32>,
    /// Default hold TTL.
    pub hold_ttl_ms: u64,
    /// TTL of waiting-list offers.
    pub offer_ttl_ms: u64,
    /// When it was created.
    pub created_at_ms: u64,
    /// Its sections, in creation order.
    pub sections: Vec<SectionView>,
}

/// The state of one seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatStatus {
    /// Can be held.
    Free,
    /// In a live hold.
    Held,
    /// In a confirmed booking.
    Sold,
}

impl SeatStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Free => "free",
            SeatStatus::Held => "held",
            SeatStatus::Sold => "sold",
        }
    }
}

/// One row's seats, seat `i` (from 0) being `<label>-<i+1>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatRowView {
    /// Row label.
    pub label: String,
    /// Status of each seat, in seat-number order.
    pub seats: Vec<SeatStatus>,
}

/// The seats of one seated section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatSectionView {
    /// Section id.
    pub section_id: String,
    /// Display name.
    pub name: String,
    /// Rows in creation order.
    pub rows: Vec<SeatRowView>,
}

/// Every seat of an event's seated sections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatMapView {
    /// Event id.
    pub event_id: String,
    /// Seated sections only, in creation order.
    pub sections: Vec<SeatSectionView>,
}

/// What a successful command answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// An event was created.
    Event(EventView),
    /// A hold was placed or released.
    Hold(HoldView),
    /// A booking was made or cancelled.
    Booking(BookingView),
    /// A waiting-list entry was made or left.
    Entry(EntryView),
}

/// `Output::into_event()` and its kin: the answer of a command of that kind. Each command
/// answers with one kind of view (an event command with an event, a hold command with a
/// hold, a confirm, purchase or cancel with a booking, a waiting-list command with an
/// entry), so the narrowing is checked here once, not by each caller.
macro_rules! narrow {
    ($($name:ident: $variant:ident($view:ty), $what:literal;)*) => {
        impl Output {
            $(
                #[doc = concat!("The ", $what, " a command of its kind answers.")]
                pub fn $name(self) -> $view {
                    match self {
                        Output::$variant(view) => view,
                        other => unreachable!(concat!("not the ", $what, " its command answers: {:?}"), other),
                    }
                }
            )*
        }
    };
}

narrow! {
    into_event: Event(EventView), "event";
    into_hold: Hold(HoldView), "hold";
    into_booking: Booking(BookingView), "booking";
    into_entry: Entry(EntryView), "entry";
}

/// An entry's status as the API shows it: the stored status, except that an offer whose
/// hold has passed `expires_at` shows `Expired` before the sweep (one type for both, so the
/// two cannot drift apart).
pub use crate::waitlist::Status as EntryStatus;

/// A waiting-list entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// Its id.
    pub id: EntryId,
    /// The event.
    pub event_id: String,
    /// The user.
    pub user_id: String,
    /// The section.
    pub section_id: String,
    /// Tickets wanted.
    pub qty: u32,
    /// Status at the time of the read.
    pub status: EntryStatus,
    /// 1-based place among the section's waiting entries; `None` unless waiting.
    pub position: Option<u32>,
    /// When it joined.
    pub created_at_ms: u64,
    /// The offer's hold, once offered.
    pub hold_id: Option<HoldId>,
    /// When the offer expires, once offered.
    pub offer_expires_at_ms: Option<u64>,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events on the shard.
    pub events: u64,
    /// Holds with status held (including due but unswept ones).
    pub holds_live: u64,
    /// Tickets in confirmed bookings, all events.
    pub tickets_sold: u64,
    /// Tickets in live holds, all events.
    pub tickets_held: u64,
    /// Sections with no ticket available (all held or sold).
    pub sections_sold_out: u64,
    /// Bookings ever made.
    pub bookings: u64,
    /// Idempotency keys remembered.
    pub idempotency_entries: u64,
}
