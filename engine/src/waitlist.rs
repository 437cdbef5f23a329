//! The waiting lists' state and rules. The cascade that `decide` computes when tickets
//! return or an entry leaves is in cascade.rs; `apply` carries out its steps (apply.rs).
//!
//! Rules (docs/api.md, "Waiting list"): strict join order per section; tickets of a section
//! that return while entries wait are set aside (they count as held) instead of going
//! back on sale; as soon as the set-aside tickets reach the first waiting entry's `qty`,
//! the entry is offered a hold of exactly its `qty` (seats picked from the set-aside ones
//! by the best-available steps), or passed over when its user cannot take them; the next
//! entry follows in the same decision. Tickets on sale stay on sale: an offer is made from
//! set-aside tickets alone. When no entry waits, set-aside tickets go back on sale. So
//! after every decision: for a section with entries waiting, set-aside < the first entry's
//! `qty`, and a section with none waiting has nothing set aside. An entry never asks for
//! more than its section's capacity (it could never be served and would block the queue).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use smallvec::SmallVec;

use serde::{Deserialize, Serialize};

use crate::ids::slot;

/// An entry's status, stored (in snapshots: variants are appended only) and shown
/// (`view::EntryStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// In its section's queue.
    Waiting,
    /// Holds an offer (`hold_id`).
    Offered,
    /// Its offer was confirmed.
    Accepted,
    /// Its offer expired, or its user could not take the tickets when its turn came (passed
    /// over).
    Expired,
    /// Its offer was released.
    Declined,
    /// Its user left.
    Left,
}

impl Status {
    /// Waiting or offered.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Waiting | Status::Offered)
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Offered => "offered",
            Status::Accepted => "accepted",
            Status::Expired => "expired",
            Status::Declined => "declined",
            Status::Left => "left",
        }
    }
}

/// A waiting-list entry: 32 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it joined.
    pub created_at_ms: u64,
    /// Event index.
    pub event: u32,
    /// User index.
    pub user: u32,
    /// Tickets wanted.
    pub qty: u32,
    /// The offer's hold counter; 0 before an offer.
    pub hold: u32,
    /// Section index.
    pub section: u16,
    /// Status.
    pub status: Status,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 32);

/// Tickets of a section set aside for its waiting list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    /// How many (GA or seated).
    pub count: u32,
    /// Which seats (seated sections).
    pub seats: BTreeSet<u32>,
}

/// The waiting lists of a shard: the part of a snapshot that format version 2 added.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waitlists {
    /// Entries by counter - 1.
    pub entries: Vec<Entry>,
    /// (event, section) → counters of its waiting entries, in join order.
    pub queues: BTreeMap<(u32, u16), VecDeque<u32>>,
    /// (event, section) → its set-aside tickets.
    pub set_aside: BTreeMap<(u32, u16), SetAside>,
    /// Event → offer TTL, for events created with one.
    pub offer_ttl_ms: BTreeMap<u32, u64>,
}

impl Waitlists {
    /// The entry with this counter.
    pub fn entry(&self, counter: u32) -> &Entry {
        &self.entries[slot(counter)]
    }

    /// The entry with this counter, to change.
    pub fn entry_mut(&mut self, counter: u32) -> &mut Entry {
        &mut self.entries[slot(counter)]
    }

    /// Set-aside tickets of a section.
    pub fn set_aside_count(&self, event: u32, section: u16) -> u32 {
        self.set_aside.get(&(event, section)).map_or(0, |p| p.count)
    }

    /// Waiting entries of a section.
    pub fn waiting(&self, event: u32, section: u16) -> u32 {
        self.queues
            .get(&(event, section))
            .map_or(0, |q| q.len() as u32)
    }

    /// Whether the event has a queue or set-aside tickets anywhere.
    pub fn touches(&self, event: u32) -> bool {
        self.queues
            .range((event, 0)..=(event, u16::MAX))
            .next()
            .is_some()
            || self
                .set_aside
                .range((event, 0)..=(event, u16::MAX))
                .next()
                .is_some()
    }
}

/// What a decision gives back, by section.
pub type ReturnedBy = SmallVec<[(u16, Returned); 2]>;

/// Tickets a decision gives back in one section: a GA quantity or seat indexes.
#[derive(Clone, Debug, Default)]
pub struct Returned {
    /// GA tickets.
    pub qty: u32,
    /// Seat indexes.
    pub seats: Vec<u32>,
}
