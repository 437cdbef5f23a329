//! Decisions counted by kind, as the server's metrics count them (holds placed, confirmed,
//! released, expired; purchases; cancellations).

use crate::decision::{Cascaded, Decision, WaitStep, WaitlistLeft};

/// Decisions of one batch by kind (a purchase is a hold and its confirmation at once and
/// counts as a purchase only).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Holds placed (waiting-list offers included).
    pub placed: u64,
    /// Holds confirmed.
    pub confirmed: u64,
    /// Holds released.
    pub released: u64,
    /// Holds expired.
    pub expired: u64,
    /// Purchases.
    pub purchased: u64,
    /// Bookings cancelled.
    pub cancelled: u64,
}

impl Tally {
    /// Counts one decision.
    pub fn count(&mut self, decision: &Decision) {
        match decision {
            Decision::HoldPlaced(_) => self.placed += 1,
            Decision::HoldConfirmed(_) => self.confirmed += 1,
            Decision::HoldReleased(_) => self.released += 1,
            Decision::HoldExpired(_) => self.expired += 1,
            Decision::Purchased(_) => self.purchased += 1,
            Decision::BookingCancelled(_) => self.cancelled += 1,
            // A release, expiry or cancel that fed a waiting list counts as itself, and
            // each offer it made as a hold placed.
            Decision::Cascaded(Cascaded { base, steps, .. }) => {
                self.count(base);
                self.count_offers(steps);
            }
            Decision::WaitlistLeft(WaitlistLeft { steps, .. }) => self.count_offers(steps),
            Decision::EventCreated(_)
            | Decision::EventCreatedWith(_)
            | Decision::HoldExtended(_)
            | Decision::WaitlistJoined(_)
            | Decision::Refused(_) => {}
        }
    }

    fn count_offers(&mut self, steps: &[WaitStep]) {
        let offers = steps
            .iter()
            .filter(|step| matches!(step, WaitStep::Offered { .. }))
            .count();
        self.placed += offers as u64;
    }
}
