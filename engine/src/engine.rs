//! The shard's state machine, its type and accessors. The phases live beside it:
//! `decide` (pure: decide.rs, and the waiting lists' cascade in cascade.rs), `apply` (the
//! only mutator: apply.rs), reads (query.rs, describe.rs), snapshots (codec.rs), the
//! invariants (invariants.rs).

use crate::derived::Derived;
use crate::ids::{BookingId, EntryId, HoldId};
use crate::state::{Booking, Hold, State};
use crate::waitlist::Waitlists;

/// One shard's inventory, holds, bookings and idempotency keys.
#[derive(Clone)]
pub struct Engine {
    pub(crate) state: State,
    pub(crate) wait: Waitlists,
    pub(crate) derived: Derived,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shard", &self.state.shard)
            .field("now_ms", &self.state.now_ms)
            .field("events", &self.state.events.len())
            .field("holds", &self.state.holds.len())
            .field("bookings", &self.state.bookings.len())
            .finish()
    }
}

impl Engine {
    /// An empty engine for shard `shard`; its hold and booking ids carry that number.
    pub fn new(shard: u16) -> Self {
        Engine {
            state: State {
                shard,
                ..State::default()
            },
            wait: Waitlists::default(),
            derived: Derived::default(),
        }
    }

    /// The shard number given at construction.
    pub fn shard(&self) -> u16 {
        self.state.shard
    }

    /// Time of the last applied decision (0 for a new engine).
    pub fn now_ms(&self) -> u64 {
        self.state.now_ms
    }

    /// When the earliest live hold expires, if any.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.derived.expiry.first().map(|(at, _)| at)
    }

    pub(crate) fn next_hold_id(&self) -> HoldId {
        HoldId::new(self.state.shard, self.state.holds.len() as u64 + 1)
    }

    pub(crate) fn next_booking_id(&self) -> BookingId {
        BookingId::new(self.state.shard, self.state.bookings.len() as u64 + 1)
    }

    pub(crate) fn entry_id(&self, counter: u32) -> EntryId {
        EntryId::new(self.state.shard, counter.into())
    }

    /// The hold of an id, if it is this shard's and exists.
    pub(crate) fn hold_at(&self, id: HoldId) -> Option<&Hold> {
        if id.shard() != self.state.shard {
            return None;
        }
        self.state.holds.get(id.slot())
    }

    /// The booking of an id, if it is this shard's and exists.
    pub(crate) fn booking_at(&self, id: BookingId) -> Option<&Booking> {
        if id.shard() != self.state.shard {
            return None;
        }
        self.state.bookings.get(id.slot())
    }

    pub(crate) fn user_index(&self, user: &str) -> Option<u32> {
        self.derived.user_index.get(user).copied()
    }
}
