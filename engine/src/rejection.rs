//! Why a command was refused: business outcomes with stable snake_case codes.
//!
//! Precedence, when several apply, is the order of the checks in `decide`:
//! `invalid_input`, `not_found`, `idempotency_key_reused`, `hold_not_active` /
//! `booking_not_active`, `hold_expired`, `event_exists`, `limit_exceeded`, `seat_taken`,
//! `sold_out` / `no_adjacent_seats` (best available), `over_capacity`; for an extension, `extension_limit` after `hold_expired`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A refused command. Nothing changed; nothing is logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The command is malformed or breaks a limit; `field` names the offending field
    /// in the HTTP body's terms (e.g. `items[1].qty`).
    InvalidInput {
        /// The field, as the client spelled it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No such event, section, hold or booking, or it belongs to another user.
    NotFound {
        /// What was looked for (`event`, `hold`, `booking`).
        what: &'static str,
    },
    /// An event with this id already exists.
    EventExists,
    /// A GA section has fewer tickets available than asked.
    SoldOut {
        /// The section that ran out.
        section_id: String,
        /// Tickets still available there.
        available: u32,
    },
    /// A named seat is held or sold.
    SeatTaken {
        /// The first seat, in request order, that is not free.
        seat: String,
    },
    /// The user would hold plus own more than the event's `max_per_user`.
    LimitExceeded {
        /// The event's cap.
        max_per_user: u32,
        /// What the user already holds plus owns.
        current: u32,
    },
    /// The hold is past its `expires_at`.
    HoldExpired,
    /// The hold is confirmed or released (an expired hold, swept or not, is
    /// [`Rejection::HoldExpired`]).
    HoldNotActive {
        /// Its status now: `confirmed` or `released`.
        status: &'static str,
    },
    /// The booking is already cancelled.
    BookingNotActive,
    /// The idempotency key was used before with another request.
    IdempotencyKeyReused,
    /// The shard keeps as much as one of its limits allows (which one: [`ShardLimit`]).
    OverCapacity(ShardLimit),
    /// Best available found no placement although at least the seats asked for are free in
    /// the sections tried (not adjacent, a split not allowed, or spread over sections).
    NoAdjacentSeats {
        /// The section with the most free seats among those tried.
        section_id: String,
        /// Its free seats.
        available: u32,
    },
    /// The user already has a live (waiting or offered) entry for this event.
    AlreadyWaiting {
        /// That entry.
        entry_id: crate::ids::EntryId,
    },
    /// The section has the tickets available now: buy instead of waiting.
    TicketsAvailable {
        /// Tickets available in the section.
        available: u32,
    },
    /// The entry is no longer waiting or offered.
    EntryNotActive {
        /// Its status (`accepted`, `expired`, `declined`, `left`).
        status: &'static str,
    },
    /// An extension would make the hold live past `created_at` + 2 h.
    ExtensionLimit {
        /// The latest `expires_at` the hold may have.
        latest_ms: u64,
    },
}

/// A per-shard limit of [`crate::limits`] that a request ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardLimit {
    /// [`crate::limits::LIVE_HOLDS_PER_SHARD_MAX`].
    LiveHolds,
    /// [`crate::limits::HOLDS_PER_SHARD_MAX`].
    Holds,
    /// [`crate::limits::BOOKINGS_PER_SHARD_MAX`].
    Bookings,
    /// [`crate::limits::PAYMENT_REF_BYTES_PER_SHARD_MAX`].
    PaymentRefBytes,
    /// [`crate::limits::EVENTS_PER_SHARD_MAX`].
    Events,
    /// [`crate::limits::WAITLIST_ENTRIES_PER_SHARD_MAX`].
    WaitlistEntries,
    /// [`crate::limits::WAITLIST_LIVE_PER_EVENT_MAX`].
    WaitlistPerEvent,
}

impl ShardLimit {
    /// What the limit counts, for messages.
    pub fn describe(self) -> String {
        use crate::limits::*;
        match self {
            ShardLimit::LiveHolds => format!("{LIVE_HOLDS_PER_SHARD_MAX} live holds"),
            ShardLimit::Holds => format!("{HOLDS_PER_SHARD_MAX} holds in all"),
            ShardLimit::Bookings => format!("{BOOKINGS_PER_SHARD_MAX} bookings"),
            ShardLimit::PaymentRefBytes => {
                format!("{PAYMENT_REF_BYTES_PER_SHARD_MAX} bytes of payment references")
            }
            ShardLimit::Events => format!("{EVENTS_PER_SHARD_MAX} events"),
            ShardLimit::WaitlistEntries => {
                format!("{WAITLIST_ENTRIES_PER_SHARD_MAX} waiting-list entries")
            }
            ShardLimit::WaitlistPerEvent => {
                format!("{WAITLIST_LIVE_PER_EVENT_MAX} live waiting-list entries in one event")
            }
        }
    }
}

impl Rejection {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::InvalidInput { .. } => "invalid_input",
            Rejection::NotFound { .. } => "not_found",
            Rejection::EventExists => "event_exists",
            Rejection::SoldOut { .. } => "sold_out",
            Rejection::SeatTaken { .. } => "seat_taken",
            Rejection::LimitExceeded { .. } => "limit_exceeded",
            Rejection::HoldExpired => "hold_expired",
            Rejection::HoldNotActive { .. } => "hold_not_active",
            Rejection::BookingNotActive => "booking_not_active",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::OverCapacity(_) => "over_capacity",
            Rejection::ExtensionLimit { .. } => "extension_limit",
            Rejection::NoAdjacentSeats { .. } => "no_adjacent_seats",
            Rejection::AlreadyWaiting { .. } => "already_waiting",
            Rejection::TicketsAvailable { .. } => "tickets_available",
            Rejection::EntryNotActive { .. } => "entry_not_active",
        }
    }

    /// Shorthand for an [`Rejection::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::InvalidInput { field, message } => write!(f, "{field}: {message}"),
            Rejection::NotFound { what } => write!(f, "{what} not found"),
            Rejection::EventExists => write!(f, "an event with this id already exists"),
            Rejection::SoldOut {
                section_id,
                available,
            } => {
                write!(
                    f,
                    "section {section_id} has only {available} tickets available"
                )
            }
            Rejection::SeatTaken { seat } => write!(f, "seat {seat} is not available"),
            Rejection::LimitExceeded {
                max_per_user,
                current,
            } => write!(
                f,
                "at most {max_per_user} tickets per user for this event; you hold or own {current}"
            ),
            Rejection::HoldExpired => write!(f, "the hold has expired"),
            Rejection::HoldNotActive { status } => write!(f, "the hold is {status}"),
            Rejection::BookingNotActive => write!(f, "the booking is already cancelled"),
            Rejection::IdempotencyKeyReused => {
                write!(f, "this Idempotency-Key was used with a different request")
            }
            Rejection::OverCapacity(limit) => write!(
                f,
                "the shard holds as much as it may: {} (a limit of boxoffice)",
                limit.describe()
            ),
            Rejection::AlreadyWaiting { entry_id } => write!(
                f,
                "you are already on a waiting list of this event: entry {entry_id}"
            ),
            Rejection::TicketsAvailable { available } => write!(
                f,
                "the section has {available} tickets available now: buy them instead of waiting"
            ),
            Rejection::EntryNotActive { status } => write!(f, "the entry is {status}"),
            Rejection::NoAdjacentSeats {
                section_id,
                available,
            } => write!(
                f,
                "no placement of the seats asked for, though seats are free (section {section_id} has {available}, the most of the sections tried); allow_split takes them from several rows of one section"
            ),
            Rejection::ExtensionLimit { latest_ms } => write!(
                f,
                "a hold lives at most {} s from its creation: expires_at may be at most {latest_ms} ms since the epoch",
                crate::limits::HOLD_LIFETIME_MS_MAX / 1000
            ),
        }
    }
}

impl std::error::Error for Rejection {}
