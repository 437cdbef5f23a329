//! Hold and booking ids: a 48-bit per-shard counter with the shard number in the top
//! 16 bits, so the server routes any id to its shard without a lookup.
//! Text form: `h-<shard>-<counter>` for holds, `b-<shard>-<counter>` for bookings,
//! `w-<shard>-<counter>` for waiting-list entries.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::limits::COUNTER_MAX;

macro_rules! shard_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[doc = concat!("Id of a ", $what, ": shard in the top 16 bits, a counter from 1 below.")]
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl $name {
            /// Builds the id of the `counter`-th object (from 1) of `shard`.
            pub fn new(shard: u16, counter: u64) -> Self {
                assert!(
                    (1..=COUNTER_MAX).contains(&counter),
                    "counter out of range: {counter}"
                );
                Self((u64::from(shard) << 48) | counter)
            }
            /// The shard that owns this object.
            pub fn shard(self) -> u16 {
                (self.0 >> 48) as u16
            }
            /// The per-shard counter, from 1.
            pub fn counter(self) -> u64 {
                self.0 & COUNTER_MAX
            }
            /// The counter as the state stores it: `decide` keeps the objects of a
            /// shard within `u32` ([`crate::limits::HOLDS_PER_SHARD_MAX`] and its kin).
            pub(crate) fn counter32(self) -> u32 {
                u32::try_from(self.counter())
                    .expect("counters fit in u32 (decide enforces the limit)")
            }
            /// Its position in the shard's vector of them (`counter - 1`).
            pub(crate) fn slot(self) -> usize {
                self.counter() as usize - 1
            }
            /// Parses the text form; `None` for anything else (the server answers 404).
            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix(concat!($prefix, "-"))?;
                let (shard, counter) = rest.split_once('-')?;
                if !is_canonical_number(shard) || !is_canonical_number(counter) {
                    return None;
                }
                let shard: u16 = shard.parse().ok()?;
                let counter: u64 = counter.parse().ok()?;
                (1..=COUNTER_MAX)
                    .contains(&counter)
                    .then(|| Self::new(shard, counter))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "-{}-{}"), self.shard(), self.counter())
            }
        }
    };
}

/// The position of the `counter`-th hold, booking or entry of a shard (counters start
/// at 1) in its vector: the one place that turns a stored counter into an index.
pub(crate) fn slot(counter: u32) -> usize {
    counter as usize - 1
}

shard_id!(HoldId, "h", "hold");
shard_id!(BookingId, "b", "booking");
shard_id!(EntryId, "w", "waiting-list entry");

/// Digits only, no sign, no leading zero (so every id has exactly one text form).
fn is_canonical_number(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_carries_the_shard() {
        let id = HoldId::new(7, 42);
        assert_eq!(id.to_string(), "h-7-42");
        assert_eq!(HoldId::parse("h-7-42"), Some(id));
        assert_eq!(id.shard(), 7);
        assert_eq!(BookingId::parse("b-0-1"), Some(BookingId::new(0, 1)));
    }

    #[test]
    fn other_spellings_are_not_ids() {
        for bad in [
            "h-7-042",
            "h-7-0",
            "b-7-1x",
            "h--1",
            "h-70000-1",
            "x-1-1",
            "h-1",
            "h-+1-1",
        ] {
            assert_eq!(HoldId::parse(bad), None, "{bad}");
        }
        assert_eq!(HoldId::parse("b-1-1"), None);
    }
}
