//! A seat's state in 8 bytes: free, held by hold n, sold to booking n, or set aside for a
//! waiting list.

use serde::{Deserialize, Serialize};

const TAG_SHIFT: u32 = 62;
const COUNTER_MASK: u64 = (1 << TAG_SHIFT) - 1;
const HELD: u64 = 1;
const SOLD: u64 = 2;
const SET_ASIDE: u64 = 3;

/// Free, held (by a hold counter) or sold (to a booking counter), packed in one `u64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatState(u64);

const _: () = assert!(std::mem::size_of::<SeatState>() == 8);

impl SeatState {
    /// Free to hold.
    pub const FREE: SeatState = SeatState(0);

    /// Set aside for a waiting list (counts as held; in no hold yet).
    pub const SET_ASIDE: SeatState = SeatState(SET_ASIDE << TAG_SHIFT);

    /// Whether it is set aside for a waiting list.
    pub fn is_set_aside(self) -> bool {
        self == Self::SET_ASIDE
    }

    /// Held by the hold with this counter.
    pub fn held(hold_counter: u64) -> Self {
        SeatState((HELD << TAG_SHIFT) | (hold_counter & COUNTER_MASK))
    }

    /// Sold to the booking with this counter.
    pub fn sold(booking_counter: u64) -> Self {
        SeatState((SOLD << TAG_SHIFT) | (booking_counter & COUNTER_MASK))
    }

    /// Whether it is free.
    pub fn is_free(self) -> bool {
        self.0 == 0
    }

    /// The public status.
    pub fn status(self) -> crate::view::SeatStatus {
        match self.0 >> TAG_SHIFT {
            0 => crate::view::SeatStatus::Free,
            HELD | SET_ASIDE => crate::view::SeatStatus::Held,
            _ => crate::view::SeatStatus::Sold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_pack_and_unpack() {
        assert!(SeatState::FREE.is_free());
        assert_eq!(SeatState::held(9).status(), crate::view::SeatStatus::Held);
        assert_ne!(SeatState::held(9), SeatState::held(8));
        assert_eq!(SeatState::sold(7).status(), crate::view::SeatStatus::Sold);
        assert_ne!(SeatState::sold(7), SeatState::held(7));
        assert!(!SeatState::sold(7).is_free());
    }
}
