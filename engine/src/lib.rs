//! # boxoffice engine
//!
//! (essay to be written)

pub mod command;
pub mod decision;
pub mod engine;
pub mod ids;
pub mod limits;
pub mod rejection;
pub mod view;

pub use command::{
    fingerprint, Actor, BookingQuery, Command, Idempotency, ItemRequest, Layout, NewEvent,
    NewHold, NewRow, NewSection,
};
pub use decision::Decision;
pub use engine::{CodecError, Decided, Engine};
pub use ids::{BookingId, HoldId};
pub use rejection::Rejection;
pub use view::*;
