//! The shard's state machine: `decide` (pure) then `apply` (the only mutator).
//!
//! THIS FILE IS THE PUBLIC CONTRACT the server is written against. Internals may move to
//! other files; the signatures below stay.

use crate::command::{Actor, BookingQuery, Command};
use crate::decision::Decision;
use crate::ids::{BookingId, HoldId};
use crate::rejection::Rejection;
use crate::view::{BookingView, EventView, HoldView, Output, SeatMapView, Stats};

/// What `decide` concluded for an accepted command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// A change: log it, apply it, answer with [`Engine::output`].
    Change(Decision),
    /// An idempotent retry of an earlier success: answer this, log nothing.
    Replay(Output),
}

/// Errors decoding a decision or snapshot.
#[derive(Debug)]
pub struct CodecError(pub String);

/// One shard's inventory, holds, bookings and idempotency keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engine {
    // internals: see the other modules
    _todo: (),
}

impl Engine {
    /// An empty engine for shard `shard`; its hold and booking ids carry that number.
    pub fn new(shard: u16) -> Self {
        let _ = shard;
        unimplemented!()
    }

    /// The shard number given at construction.
    pub fn shard(&self) -> u16 {
        unimplemented!()
    }

    /// Checks every rule and returns what would change, or why not. Pure.
    /// `now` (ms since the Unix epoch) must not be before the last applied decision's time.
    pub fn decide(&self, command: &Command, now_ms: u64) -> Result<Decided, Rejection> {
        let _ = (command, now_ms);
        unimplemented!()
    }

    /// Applies a decision. Infallible; the only mutator; what replay calls.
    pub fn apply(&mut self, decision: &Decision) {
        let _ = decision;
        unimplemented!()
    }

    /// The reply to a decision just applied (the created event, placed/released hold,
    /// made/cancelled booking), with statuses as of `now_ms`.
    pub fn output(&self, decision: &Decision, now_ms: u64) -> Output {
        let _ = (decision, now_ms);
        unimplemented!()
    }

    /// Expiry decisions for up to `max` holds whose `expires_at <= now`, earliest first,
    /// one [`Decision`] per hold. Uses an ordered index, not a scan.
    pub fn decide_expiry(&self, now_ms: u64, max: usize) -> Vec<Decision> {
        let _ = (now_ms, max);
        unimplemented!()
    }

    /// When the earliest live hold expires, if any (lets the shard loop sleep until then).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        unimplemented!()
    }

    /// One event with live counts.
    pub fn event(&self, event_id: &str) -> Option<EventView> {
        let _ = event_id;
        unimplemented!()
    }

    /// Events ordered by id, those with id > `after`, at most `limit`.
    pub fn events(&self, after: Option<&str>, limit: usize) -> Vec<EventView> {
        let _ = (after, limit);
        unimplemented!()
    }

    /// Every seat of the event's seated sections.
    pub fn seat_map(&self, event_id: &str) -> Option<SeatMapView> {
        let _ = event_id;
        unimplemented!()
    }

    /// A hold as `actor` may see it (another user's hold is `not_found`); status at `now_ms`.
    pub fn hold(&self, hold_id: HoldId, actor: &Actor, now_ms: u64) -> Result<HoldView, Rejection> {
        let _ = (hold_id, actor, now_ms);
        unimplemented!()
    }

    /// A booking as `actor` may see it.
    pub fn booking(&self, booking_id: BookingId, actor: &Actor) -> Result<BookingView, Rejection> {
        let _ = (booking_id, actor);
        unimplemented!()
    }

    /// Bookings matching the query, newest first (by (created_at_ms, id) descending).
    pub fn bookings(&self, query: &BookingQuery) -> Vec<BookingView> {
        let _ = query;
        unimplemented!()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> Stats {
        unimplemented!()
    }

    /// Time of the last applied decision (0 for a new engine).
    pub fn now_ms(&self) -> u64 {
        unimplemented!()
    }

    /// Asserts every invariant of design.md that the engine owns, one assert each.
    pub fn check_invariants(&self) {
        unimplemented!()
    }

    /// The whole state, versioned and deterministic: equal states give equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        unimplemented!()
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Self, CodecError> {
        let _ = bytes;
        unimplemented!()
    }
}
