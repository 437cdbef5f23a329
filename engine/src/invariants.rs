//! `check_invariants`: the invariants that the engine owns, numbered and worded as in
//! docs/architecture.md ("The invariants"), recounted from scratch from the holds and
//! bookings. Tests call it after every step; a breach panics with both values.
//!
//! Invariant 3 (a multi-item or multi-seat request succeeds whole or changes nothing) holds
//! by construction: `decide` changes nothing and `apply` cannot fail. Invariants 4, 5 and
//! 8 to 10 belong to the server and the log.

use std::collections::{BTreeMap, BTreeSet};

use crate::derived::Derived;
use crate::engine::Engine;
use crate::seat::SeatState;
use crate::state::{State, Status};
use crate::waitlist::{Entry, Status as EntryStatus, Waitlists};

/// What the holds and bookings say the counters should be.
#[derive(Default)]
struct Recount {
    /// (event, section) → tickets in live holds.
    held: BTreeMap<(u32, u16), u32>,
    /// (event, section) → tickets in confirmed bookings.
    sold: BTreeMap<(u32, u16), u32>,
    /// (event, section, seat) → the state the owning hold or booking gives it.
    seats: BTreeMap<(u32, u16, u32), SeatState>,
    /// (event, user) → tickets in live holds plus confirmed bookings.
    per_user: BTreeMap<(u32, u32), u32>,
}

impl Recount {
    fn of(state: &State, wait: &Waitlists) -> Self {
        let mut recount = Recount::default();
        for (&(e, s), pool) in &wait.set_aside {
            *recount.held.entry((e, s)).or_default() += pool.count;
            for &seat in &pool.seats {
                recount.seats.insert((e, s, seat), SeatState::SET_ASIDE);
            }
        }
        let mut booking_of_hold: BTreeMap<u32, (u32, bool)> = BTreeMap::new();
        for (i, b) in state.bookings.iter().enumerate() {
            let previous = booking_of_hold.insert(b.hold, (i as u32 + 1, !b.is_cancelled()));
            assert!(previous.is_none(), "hold {} has two bookings", b.hold);
        }
        for (i, hold) in state.holds.iter().enumerate() {
            let counter = i as u32 + 1;
            let (held, owner) = match hold.status {
                Status::Held => (true, SeatState::held(counter.into())),
                Status::Confirmed => match booking_of_hold.get(&counter) {
                    Some(&(b, true)) => (false, SeatState::sold(b.into())),
                    Some(&(_, false)) => continue,
                    None => panic!("confirmed hold {counter} has no booking"),
                },
                Status::Released | Status::Expired => continue,
            };
            let target = if held {
                &mut recount.held
            } else {
                &mut recount.sold
            };
            let (items, seats) = state.lines_of(hold);
            for &(s, q) in items.iter() {
                *target.entry((hold.event, s)).or_default() += q;
            }
            for &(s, seat) in seats.iter() {
                *target.entry((hold.event, s)).or_default() += 1;
                let previous = recount.seats.insert((hold.event, s, seat), owner);
                assert!(
                    previous.is_none(),
                    "invariant 2: seat {seat} of section {s} of event {} is in two live holds or bookings: {previous:?} and {owner:?}",
                    hold.event
                );
            }
            if state.events[hold.event as usize].max_per_user.is_some() {
                *recount.per_user.entry((hold.event, hold.user)).or_default() +=
                    state.tickets_of(hold);
            }
        }
        recount
    }
}

/// A map of the derived indexes, in key order (to compare with a recount).
fn ordered<'a, K: Ord + Copy + 'a, V: Copy + 'a>(
    map: impl IntoIterator<Item = (&'a K, &'a V)>,
) -> BTreeMap<K, V> {
    map.into_iter().map(|(&k, &v)| (k, v)).collect()
}

impl Engine {
    /// Asserts every invariant the engine owns; panics with both values on a breach.
    pub fn check_invariants(&self) {
        let state = &self.state;
        let recount = Recount::of(state, &self.wait);
        for (e, event) in state.events.iter().enumerate() {
            let e = e as u32;
            for (s, section) in event.sections.iter().enumerate() {
                let s = s as u16;
                let held = recount.held.get(&(e, s)).copied().unwrap_or(0);
                let sold = recount.sold.get(&(e, s)).copied().unwrap_or(0);
                // 1. For every section: available + held + sold == capacity, none negative.
                assert!(
                    section.held == held
                        && section.sold == sold
                        && u64::from(held) + u64::from(sold) <= u64::from(section.capacity),
                    "invariant 1 in {}/{}: counters held {} sold {} capacity {}; recounted held {held} sold {sold}",
                    event.id,
                    section.id,
                    section.held,
                    section.sold,
                    section.capacity
                );
                // 2. A seat is in exactly one state: free, held by one hold, or sold to one booking.
                for (i, &seat) in section.seats.iter().enumerate() {
                    let owner = recount
                        .seats
                        .get(&(e, s, i as u32))
                        .copied()
                        .unwrap_or_default();
                    assert_eq!(
                        seat,
                        owner,
                        "invariant 2: seat {} of {}/{} is {seat:?} but its holds and bookings say {owner:?}",
                        section.seat_label(i as u32),
                        event.id,
                        section.id
                    );
                }
            }
        }
        // 7. A user never holds plus owns more than the event's max_per_user.
        let counted = ordered(&self.derived.per_user);
        assert_eq!(
            counted, recount.per_user,
            "invariant 7: per-user counts (left) differ from a recount (right)"
        );
        for (&(e, user), &count) in &counted {
            let event = &state.events[e as usize];
            let max = event.max_per_user.expect("only capped events are counted");
            assert!(
                count <= max,
                "invariant 7: user {} has {count} tickets in {}, max_per_user {max}",
                state.users[user as usize],
                event.id
            );
        }
        self.check_waitlists();
        self.check_indexes();
    }

    /// The waiting lists' invariants (docs/api.md, "Waiting list").
    fn check_waitlists(&self) {
        self.check_set_aside();
        let queued = self.check_queues();
        let live = self.check_entries(&queued);
        self.check_waitlist_indexes(&live);
    }

    /// Set-aside tickets: counted as held, seats matching the count, someone waiting.
    fn check_set_aside(&self) {
        let (state, wait) = (&self.state, &self.wait);
        for (&(e, s), pool) in &wait.set_aside {
            let section = &state.events[e as usize].sections[s as usize];
            // Set-aside tickets count as held.
            assert!(
                pool.count > 0 && pool.count <= section.held,
                "set-aside {} of {}/{} is empty or above held {}",
                pool.count,
                state.events[e as usize].id,
                section.id,
                section.held
            );
            assert!(
                section.is_seated() != pool.seats.is_empty()
                    && (!section.is_seated() || pool.seats.len() as u32 == pool.count),
                "set-aside seats of {} match its count",
                section.id
            );
            // When no entry waits, set-aside tickets go back on sale.
            assert!(
                wait.waiting(e, s) > 0,
                "{}/{} has tickets set aside but nobody waiting",
                state.events[e as usize].id,
                section.id
            );
        }
    }

    /// The queues: none empty, in join order, of waiting entries of their section, and
    /// none whose head fits in what is on sale. Returns every queued entry.
    fn check_queues(&self) -> BTreeSet<u32> {
        let (state, wait) = (&self.state, &self.wait);
        let mut queued = BTreeSet::new();
        for (&(e, s), queue) in &wait.queues {
            let section = &state.events[e as usize].sections[s as usize];
            assert!(!queue.is_empty(), "empty queues are removed");
            // Strict join order: a queue holds entries in the order they joined.
            assert!(
                queue.iter().zip(queue.iter().skip(1)).all(|(a, b)| a < b),
                "the queue of {} is in join order",
                section.id
            );
            for &c in queue {
                let entry = wait.entry(c);
                assert!(
                    entry.status == EntryStatus::Waiting && (entry.event, entry.section) == (e, s),
                    "queued entry {c} waits in this section"
                );
                queued.insert(c);
            }
            // No set-aside tickets enough for the first entry while it waits.
            let head = wait.entry(queue[0]);
            let pool = wait.set_aside_count(e, s);
            assert!(
                pool < head.qty,
                "{}/{}: {pool} set aside while the first entry waits for {}",
                state.events[e as usize].id,
                section.id,
                head.qty
            );
        }
        queued
    }

    /// Every entry: queued exactly when waiting, one live entry per user per event, and
    /// an offer that matches its entry. Returns the live entries by (event, user).
    fn check_entries(&self, queued: &BTreeSet<u32>) -> BTreeMap<(u32, u32), u32> {
        let (state, wait) = (&self.state, &self.wait);
        let mut live = BTreeMap::new();
        for (i, entry) in wait.entries.iter().enumerate() {
            let c = i as u32 + 1;
            assert_eq!(
                entry.status == EntryStatus::Waiting,
                queued.contains(&c),
                "entry {c} is queued exactly when waiting"
            );
            if entry.status.is_live() {
                // One live entry per user per event.
                let previous = live.insert((entry.event, entry.user), c);
                assert!(
                    previous.is_none(),
                    "user {} has two live entries in event {}: {previous:?} and {c}",
                    state.users[entry.user as usize],
                    state.events[entry.event as usize].id
                );
            }
            if matches!(entry.status, EntryStatus::Offered | EntryStatus::Accepted) {
                self.check_offer(c, entry);
            }
        }
        live
    }

    /// An entry is offered its whole qty or nothing, as a hold of its user: held while
    /// `offered`, confirmed once `accepted`.
    fn check_offer(&self, c: u32, entry: &Entry) {
        let state = &self.state;
        let hold = state.hold(entry.hold);
        let (items, seats) = state.lines_of(hold);
        assert!(
            hold.user == entry.user
                && hold.event == entry.event
                && items.iter().all(|&(s, _)| s == entry.section)
                && seats.iter().all(|&(s, _)| s == entry.section)
                && state.tickets_of(hold) == entry.qty,
            "entry {c}'s offer is its qty of its section for its user"
        );
        let want = if entry.status == EntryStatus::Offered {
            Status::Held
        } else {
            Status::Confirmed
        };
        assert_eq!(hold.status, want, "entry {c}'s offer status");
    }

    /// The waiting lists' derived indexes agree with the entries (`live`, by event and
    /// user).
    fn check_waitlist_indexes(&self, live: &BTreeMap<(u32, u32), u32>) {
        assert_eq!(
            &ordered(&self.derived.live_entry),
            live,
            "the live-entry index matches the entries"
        );
        let mut want_counts = BTreeMap::new();
        for &(event, _) in live.keys() {
            *want_counts.entry(event).or_insert(0u32) += 1;
        }
        assert_eq!(
            ordered(&self.derived.live_per_event),
            want_counts,
            "live entries per event"
        );
        let want: BTreeMap<u32, u32> = self
            .wait
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.status == EntryStatus::Offered)
            .map(|(i, e)| (e.hold, i as u32 + 1))
            .collect();
        assert_eq!(
            ordered(&self.derived.offer_of),
            want,
            "the offer index matches the entries"
        );
    }

    /// The derived indexes agree with the state.
    fn check_indexes(&self) {
        let state = &self.state;
        let rebuilt = Derived::rebuild(state, &self.wait);
        let mut live: Vec<(u64, u32)> = self
            .derived
            .expiry
            .entries()
            .iter()
            .copied()
            .filter(|&e| state.is_current(e))
            .collect();
        live.sort_unstable();
        live.dedup();
        let mut expected = rebuilt.expiry.entries().to_vec();
        expected.sort_unstable();
        assert_eq!(
            live, expected,
            "the expiry index lists exactly the live holds"
        );
        if let Some(e) = self.derived.expiry.first() {
            assert!(state.is_current(e), "the top of the expiry index is live");
        }
        assert_eq!(self.derived.live_holds, rebuilt.live_holds, "live holds");
        assert!(
            self.derived.summaries == rebuilt.summaries,
            "the free-run summaries match the seats"
        );
        assert_eq!(
            self.derived.user_index, rebuilt.user_index,
            "the user index matches the users"
        );
        let cancelled: Vec<u32> = (1..=state.bookings.len() as u32)
            .filter(|&c| state.booking(c).is_cancelled())
            .collect();
        let timed: Vec<u32> = state.cancelled_at.keys().copied().collect();
        assert_eq!(
            cancelled, timed,
            "cancelled bookings (left) and cancellation times (right)"
        );
        assert_eq!(
            state.idem.len(),
            state.idem_order.len() + self.derived.refusals.len(),
            "every idempotency key is in a retention order"
        );
        assert!(
            self.derived.refusals == rebuilt.refusals,
            "the remembered refusals match the keys"
        );
    }
}
