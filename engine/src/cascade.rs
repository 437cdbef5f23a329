//! The waiting lists' part of `decide`: the cascade that follows when tickets return or
//! an entry leaves (the rules are in waitlist.rs), as the [`WaitStep`]s `apply` carries
//! out.

use std::collections::BTreeSet;

use smallvec::SmallVec;

use crate::decision::{Cascaded, Decision, Lines, WaitStep};
use crate::engine::Engine;
use crate::ids::HoldId;
use crate::limits::HOLDS_PER_SHARD_MAX;
use crate::picker;
use crate::state::{Row, Section};
use crate::waitlist::{Returned, ReturnedBy};

impl Engine {
    /// What the waiting lists of `event` do after a decision that gives back `returned`
    /// (by section, in section order) and removes the waiting entry `leaving` from its
    /// queue; `user_delta` is the tickets the decision takes off one user's count.
    /// Only for an event the waiting lists touch
    /// ([`crate::waitlist::Waitlists::touches`]: the callers check it, so that a decision
    /// with no waiting list skips the lookups).
    #[allow(clippy::too_many_lines)]
    pub(crate) fn cascade(
        &self,
        event: u32,
        returned: &[(u16, Returned)],
        leaving: Option<u32>,
        user_delta: Option<(u32, u32)>,
        now_ms: u64,
    ) -> Vec<WaitStep> {
        let mut steps = Vec::new();
        let e = &self.state.events[event as usize];
        let offer_ttl = self
            .wait
            .offer_ttl_ms
            .get(&event)
            .copied()
            .unwrap_or(e.hold_ttl_ms);
        let mut sections: SmallVec<[u16; 4]> = returned.iter().map(|(s, _)| *s).collect();
        if let Some(c) = leaving {
            sections.push(self.wait.entry(c).section);
        }
        sections.sort_unstable();
        sections.dedup();
        let mut next_hold = self.state.holds.len() as u64 + 1;
        let none = Returned::default();
        for s in sections {
            let section = &e.sections[s as usize];
            let seated = section.is_seated();
            let back = returned
                .iter()
                .find(|(x, _)| *x == s)
                .map_or(&none, |(_, r)| r);
            // The queue without the entry that leaves (read in place: queues can be long).
            let queued = self.wait.queues.get(&(event, s));
            let leaves_here = leaving.is_some_and(|c| self.wait.entry(c).section == s) as usize;
            let waiting = queued.map_or(0, |q| q.len()) - leaves_here;
            let queue = queued
                .into_iter()
                .flatten()
                .copied()
                .filter(|&c| Some(c) != leaving);
            // Tickets set aside before this decision...
            let pool = self.wait.set_aside.get(&(event, s));
            let mut pooled = pool.map_or(0, |p| p.count);
            let mut pool_seats: BTreeSet<u32> = pool.map(|p| p.seats.clone()).unwrap_or_default();
            if waiting == 0 {
                // Nobody waits: what was set aside goes back on sale (returns stay free).
                if pooled > 0 {
                    steps.push(WaitStep::BackOnSale {
                        section: s,
                        qty: if seated { 0 } else { pooled },
                        seats: pool_seats.into_iter().collect(),
                    });
                }
                continue;
            }
            // ... and free ones the waiting list takes: what this decision gives back, and
            // once an entry fits, the section's available tickets too. Offers take the
            // set-aside ones first; what is left of the free ones is set aside at the end.
            let mut fresh = back.qty;
            let mut fresh_seats: BTreeSet<u32> = back.seats.iter().copied().collect();
            let mut available = section.available();
            let mut served = 0;
            for c in queue {
                let entry = self.wait.entry(c);
                let have = pooled + fresh + fresh_seats.len() as u32;
                if have + available < entry.qty {
                    break;
                }
                served += 1;
                if available > 0 {
                    if seated {
                        fresh_seats.extend(self.free_seats(event, s));
                    } else {
                        fresh += available;
                    }
                    available = 0;
                }
                let over_limit = e.max_per_user.is_some_and(|max| {
                    let mut current = self
                        .derived
                        .per_user
                        .get(&(event, entry.user))
                        .copied()
                        .unwrap_or(0);
                    if let Some((u, t)) = user_delta {
                        if u == entry.user {
                            current -= t;
                        }
                    }
                    current + entry.qty > max
                });
                if over_limit || next_hold > HOLDS_PER_SHARD_MAX {
                    steps.push(WaitStep::PassedOver {
                        entry: self.entry_id(c),
                    });
                    continue;
                }
                let mut lines = Lines::default();
                if seated {
                    let union: BTreeSet<u32> = pool_seats.union(&fresh_seats).copied().collect();
                    let picked = pick_from_set(&section.rows, &union, entry.qty)
                        .expect("the set-aside and free seats suffice");
                    for seat in &picked {
                        if pool_seats.remove(seat) {
                            pooled -= 1;
                        } else {
                            fresh_seats.remove(seat);
                        }
                    }
                    lines.seats.extend(picked.into_iter().map(|seat| (s, seat)));
                } else {
                    let from_pool = pooled.min(entry.qty);
                    pooled -= from_pool;
                    fresh -= entry.qty - from_pool;
                    lines.items.push((s, entry.qty));
                }
                steps.push(WaitStep::Offered {
                    entry: self.entry_id(c),
                    hold: HoldId::new(self.state.shard, next_hold),
                    lines,
                    total_cents: section.price_cents * u64::from(entry.qty),
                    expires_at_ms: now_ms + offer_ttl,
                });
                next_hold += 1;
            }
            if served == waiting {
                if pooled > 0 {
                    steps.push(WaitStep::BackOnSale {
                        section: s,
                        qty: if seated { 0 } else { pooled },
                        seats: pool_seats.into_iter().collect(),
                    });
                }
            } else if fresh > 0 || !fresh_seats.is_empty() {
                steps.push(WaitStep::SetAside {
                    section: s,
                    qty: fresh,
                    seats: fresh_seats.into_iter().collect(),
                });
            }
        }
        steps
    }

    /// Every free seat of a seated section, ascending.
    fn free_seats(&self, event: u32, section: u16) -> Vec<u32> {
        let s: &Section = &self.state.events[event as usize].sections[section as usize];
        (0..s.seats.len() as u32)
            .filter(|&i| s.seats[i as usize].is_free())
            .collect()
    }
}

/// Best available among the seats of `pool` (seat indexes of a section with `rows`):
/// adjacent first (steps 1 and 2, other seats count as taken), split when they are not.
pub fn pick_from_set(rows: &[Row], pool: &BTreeSet<u32>, qty: u32) -> Option<Vec<u32>> {
    // (row index, its numbers in the pool, ascending), rows in order.
    let mut by_row: Vec<(usize, Vec<u32>)> = Vec::new();
    for &seat in pool {
        let r = rows.partition_point(|row| row.start <= seat) - 1;
        let number = seat - rows[r].start + 1;
        match by_row.last_mut() {
            Some((last, numbers)) if *last == r => numbers.push(number),
            _ => by_row.push((r, vec![number])),
        }
    }
    let runs = |numbers: &[u32]| {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for &m in numbers {
            match out.last_mut() {
                Some((a, len)) if *a + *len == m => *len += 1,
                _ => out.push((m, 1)),
            }
        }
        out
    };
    for no_orphan in [true, false] {
        for (r, numbers) in &by_row {
            let row = &rows[*r];
            if let Some(x) = picker::best_block(row.count, &runs(numbers), qty, no_orphan) {
                return Some((x..x + qty).map(|m| row.start + m - 1).collect());
            }
        }
    }
    let counts: Vec<u32> = by_row.iter().map(|(_, n)| n.len() as u32).collect();
    let plan = picker::split_rows(&counts, qty)?;
    let mut out = Vec::with_capacity(qty as usize);
    for (i, take) in plan {
        let (r, numbers) = &by_row[i];
        let row = &rows[*r];
        out.extend(
            picker::nearest_middle(row.count, numbers, take)
                .into_iter()
                .map(|m| row.start + m - 1),
        );
    }
    Some(out)
}

impl Engine {
    /// What ending hold `counter` gives back, by section, and the tickets it takes off
    /// its user's count (capped events only).
    pub(crate) fn returned_by(&self, counter: u32) -> (ReturnedBy, Option<(u32, u32)>) {
        let hold = self.state.hold(counter);
        let (items, seats) = self.state.lines_of(hold);
        let mut returned = ReturnedBy::new();
        fn slot(returned: &mut ReturnedBy, s: u16) -> usize {
            match returned.iter().position(|(x, _)| *x == s) {
                Some(i) => i,
                None => {
                    returned.push((s, Default::default()));
                    returned.len() - 1
                }
            }
        }
        for &(s, q) in items {
            let i = slot(&mut returned, s);
            returned[i].1.qty += q;
        }
        for &(s, seat) in seats {
            let i = slot(&mut returned, s);
            returned[i].1.seats.push(seat);
        }
        let delta = self.state.events[hold.event as usize]
            .max_per_user
            .map(|_| (hold.user, crate::state::tickets(items, seats)));
        (returned, delta)
    }

    /// `base` (a release, expiry or cancellation of hold `counter`'s tickets) alone, or
    /// wrapped with what the event's waiting lists do next.
    pub(crate) fn with_cascade(&self, base: Decision, counter: u32, now_ms: u64) -> Decision {
        let event = self.state.hold(counter).event;
        if !self.wait.touches(event) {
            return base;
        }
        let (returned, delta) = self.returned_by(counter);
        let steps = self.cascade(event, &returned, None, delta, now_ms);
        if steps.is_empty() {
            base
        } else {
            Decision::Cascaded(Cascaded {
                base: Box::new(base),
                event,
                steps,
            })
        }
    }
}
