//! # boxoffice engine
//!
//! The state machine that decides every sale of one shard: events with their sections
//! and seats, holds, bookings, idempotency keys. It is pure and deterministic: no I/O,
//! no threads, no clock, no randomness. Time arrives as an argument (`now_ms`), ids come
//! from counters, and every collection that reaches a decision or a snapshot is ordered.
//!
//! **Decide, then apply.** [`Engine::decide`] checks every rule against the current
//! state and returns a [`Decision`] (what would change) or a [`Rejection`] with a stable
//! code; it cannot change anything, so a refused multi-seat hold changes nothing by
//! construction. [`Engine::apply`] is infallible and is the only mutator; replay after a
//! crash calls nothing else, so a later change of the rules cannot rewrite history.
//!
//! **What it does not know.** Where decisions are stored (the `wal` crate), how requests
//! arrive (the server), what time it is (the caller says), who the caller really is (the
//! server verifies tokens and passes an [`Actor`]).
//!
//! Limits live in [`limits`]; the invariants of docs/architecture.md are asserted by
//! [`Engine::check_invariants`].
#![warn(clippy::too_many_lines)]

mod apply;
mod cascade;
pub mod chunked;
mod codec;
pub mod command;
mod decide;
pub mod decision;
mod derived;
mod describe;
mod engine;
mod expiry;
pub mod ids;
mod invariants;
pub mod limits;
mod picker;
mod query;
pub mod rejection;
pub mod seat;
mod state;
mod summary;
mod tally;
pub mod view;
mod waitlist;

pub use codec::{CodecError, SnapshotCopy};
pub use command::{
    fingerprint, Actor, BestAvailable, BookingQuery, Command, EventOptions, Idempotency,
    ItemRequest, Layout, NewEntry, NewEvent, NewHold, NewRow, NewSection,
};
pub use decide::{is_valid_id, is_valid_user_id, Decided, Executed};
pub use decision::{
    Decision, EventSpec, IdemScope, IdemTag, Lines, Refusal, Refused, SectionSpec, UserRef,
    WaitStep,
};
pub use engine::Engine;
pub use ids::{BookingId, EntryId, HoldId};
pub use rejection::{Rejection, ShardLimit};
pub use tally::Tally;
pub use view::*;
