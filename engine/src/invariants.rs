//! `check_invariants`: the invariants of design.md that the engine owns, in the same
//! words and order, one assert each, recounted from scratch. Tests call it after every step.

use std::collections::BTreeMap;

use crate::engine::Engine;
use crate::state::{Derived, Status};

impl Engine {
    /// Asserts every invariant the engine owns; panics with both values on a breach.
    pub fn check_invariants(&self) {
        let state = &self.state;
        // Recount held and sold per section, and tickets per (event, user), from the holds.
        let mut held: BTreeMap<(u32, u16), u32> = BTreeMap::new();
        let mut sold: BTreeMap<(u32, u16), u32> = BTreeMap::new();
        let mut per_user: BTreeMap<(u32, u32), u32> = BTreeMap::new();
        let mut seat_owner: BTreeMap<(u32, u16, u32), crate::seat::SeatState> = BTreeMap::new();
        let booking_of_hold: BTreeMap<u64, (u64, bool)> = state
            .bookings
            .iter()
            .enumerate()
            .map(|(i, b)| (b.hold, (i as u64 + 1, b.cancelled_at_ms.is_none())))
            .collect();
        for (i, hold) in state.holds.iter().enumerate() {
            let counter = i as u64 + 1;
            let (target, state_of_seat) = match hold.status {
                Status::Held => (&mut held, crate::seat::SeatState::held(counter)),
                Status::Confirmed => match booking_of_hold.get(&counter) {
                    Some(&(b, true)) => (&mut sold, crate::seat::SeatState::sold(b)),
                    Some(&(_, false)) => continue,
                    None => panic!("invariant: confirmed hold {counter} has no booking"),
                },
                Status::Released | Status::Expired => continue,
            };
            for &(s, q) in &hold.lines.items {
                *target.entry((hold.event, s)).or_default() += q;
            }
            for &(s, seat) in &hold.lines.seats {
                *target.entry((hold.event, s)).or_default() += 1;
                let previous = seat_owner.insert((hold.event, s, seat), state_of_seat);
                assert!(
                    previous.is_none(),
                    "invariant 2: seat {seat} of section {s} in two live holds/bookings"
                );
            }
            *per_user.entry((hold.event, hold.user)).or_default() += hold.lines.tickets();
        }
        for (e, event) in state.events.iter().enumerate() {
            let e = e as u32;
            for (s, section) in event.sections.iter().enumerate() {
                let s = s as u16;
                // 1. available + held + sold == capacity, none negative.
                assert!(
                    section.held + section.sold <= section.capacity,
                    "invariant 1: held {} + sold {} > capacity {} in {}/{}",
                    section.held,
                    section.sold,
                    section.capacity,
                    event.id,
                    section.id
                );
                assert_eq!(
                    section.held,
                    held.get(&(e, s)).copied().unwrap_or(0),
                    "invariant 1: held recount in {}/{}",
                    event.id,
                    section.id
                );
                assert_eq!(
                    section.sold,
                    sold.get(&(e, s)).copied().unwrap_or(0),
                    "invariant 1: sold recount in {}/{}",
                    event.id,
                    section.id
                );
                // 2. A seat is in exactly one state: free, held by one hold, or sold to one booking.
                for (i, &seat) in section.seats.iter().enumerate() {
                    let expected = seat_owner
                        .get(&(e, s, i as u32))
                        .copied()
                        .unwrap_or_default();
                    assert_eq!(
                        seat,
                        expected,
                        "invariant 2: seat {} of {}",
                        section.seat_label(i as u32),
                        event.id
                    );
                }
            }
            // 7. A user never holds plus owns more than the event's max_per_user.
            for (&user, &count) in &event.per_user {
                assert_eq!(
                    count,
                    per_user.get(&(e, user)).copied().unwrap_or(0),
                    "invariant 7: recount of user {user} in {}",
                    event.id
                );
                if let Some(max) = event.max_per_user {
                    assert!(
                        count <= max,
                        "invariant 7: user {user} has {count} > {max} in {}",
                        event.id
                    );
                }
            }
            let counted = per_user
                .iter()
                .filter(|((ev, _), c)| *ev == e && **c > 0)
                .count();
            assert_eq!(
                counted,
                event.per_user.len(),
                "invariant 7: users counted in {}",
                event.id
            );
        }
        // The derived indexes agree with the state (expiry index = the live holds).
        let rebuilt = Derived::rebuild(state);
        assert_eq!(
            self.derived.expiry, rebuilt.expiry,
            "the expiry index lists exactly the live holds"
        );
        assert_eq!(
            self.derived.user_index, rebuilt.user_index,
            "the user index matches the users"
        );
        assert_eq!(
            state.idem.len(),
            state.idem_order.len(),
            "every idempotency key is in the retention order"
        );
    }
}
