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
use crate::state::Row;
use crate::waitlist::{Entry, Returned, ReturnedBy};

/// One cascade's state across the sections it visits, in section order.
struct Run {
    event: u32,
    /// The waiting entry the decision removes from its queue.
    leaving: Option<u32>,
    /// (user, tickets) the decision takes off that user's count.
    user_delta: Option<(u32, u32)>,
    now_ms: u64,
    offer_ttl_ms: u64,
    /// The counter of the next hold an offer creates.
    next_hold: u64,
    steps: Vec<WaitStep>,
}

/// One section's tickets during a cascade: those set aside before the decision
/// (`pooled`, `pool_seats`) and what the decision gives back (`fresh`, `fresh_seats`),
/// which is set aside too (design.md: returned tickets never go back on sale while entries
/// wait). Offers are made from these alone, never from the tickets on sale: an entry is
/// offered once the set-aside tickets reach its `qty`. Offers take the earlier set-aside
/// ones first; what is left of the returned ones is set aside at the end.
struct Tickets {
    seated: bool,
    pooled: u32,
    pool_seats: BTreeSet<u32>,
    fresh: u32,
    fresh_seats: BTreeSet<u32>,
}

impl Tickets {
    /// Whether an entry for `qty` tickets fits in what is set aside and given back.
    fn fit(&self, qty: u32) -> bool {
        self.pooled + self.fresh + self.fresh_seats.len() as u32 >= qty
    }

    /// Takes `qty` tickets of section `s` (seat indexes by `rows`) for an offer: the
    /// set-aside ones first; seats by best available among the set-aside and returned ones.
    fn take(&mut self, rows: &[Row], s: u16, qty: u32) -> Lines {
        let mut lines = Lines::default();
        if self.seated {
            let union: BTreeSet<u32> = self.pool_seats.union(&self.fresh_seats).copied().collect();
            let picked =
                pick_from_set(rows, &union, qty).expect("the set-aside and free seats suffice");
            for seat in &picked {
                if self.pool_seats.remove(seat) {
                    self.pooled -= 1;
                } else {
                    self.fresh_seats.remove(seat);
                }
            }
            lines.seats.extend(picked.into_iter().map(|seat| (s, seat)));
        } else {
            let from_pool = self.pooled.min(qty);
            self.pooled -= from_pool;
            self.fresh -= qty - from_pool;
            lines.items.push((s, qty));
        }
        lines
    }

    /// What becomes of section `s`'s tickets left after the offers: when every entry was
    /// served (or nobody waits), what is still set aside goes back on sale (returns stay
    /// free); otherwise what is left of the free ones is set aside.
    fn leftover(self, s: u16, all_served: bool) -> Option<WaitStep> {
        if all_served {
            (self.pooled > 0).then(|| WaitStep::BackOnSale {
                section: s,
                qty: if self.seated { 0 } else { self.pooled },
                seats: self.pool_seats.into_iter().collect(),
            })
        } else if self.fresh > 0 || !self.fresh_seats.is_empty() {
            Some(WaitStep::SetAside {
                section: s,
                qty: self.fresh,
                seats: self.fresh_seats.into_iter().collect(),
            })
        } else {
            None
        }
    }
}

impl Engine {
    /// What the waiting lists of `event` do after a decision that gives back `returned`
    /// (by section, in section order) and removes the waiting entry `leaving` from its
    /// queue; `user_delta` is the tickets the decision takes off one user's count.
    /// Only for an event the waiting lists touch
    /// ([`crate::waitlist::Waitlists::touches`]: the callers check it, so that a decision
    /// with no waiting list skips the lookups).
    pub(crate) fn cascade(
        &self,
        event: u32,
        returned: &[(u16, Returned)],
        leaving: Option<u32>,
        user_delta: Option<(u32, u32)>,
        now_ms: u64,
    ) -> Vec<WaitStep> {
        let e = &self.state.events[event as usize];
        let mut run = Run {
            event,
            leaving,
            user_delta,
            now_ms,
            offer_ttl_ms: self
                .wait
                .offer_ttl_ms
                .get(&event)
                .copied()
                .unwrap_or(e.hold_ttl_ms),
            next_hold: self.state.holds.len() as u64 + 1,
            steps: Vec::new(),
        };
        let mut sections: SmallVec<[u16; 4]> = returned.iter().map(|(s, _)| *s).collect();
        if let Some(c) = leaving {
            sections.push(self.wait.entry(c).section);
        }
        sections.sort_unstable();
        sections.dedup();
        let none = Returned::default();
        for s in sections {
            let back = returned
                .iter()
                .find(|(x, _)| *x == s)
                .map_or(&none, |(_, r)| r);
            self.cascade_section(&mut run, s, back);
        }
        run.steps
    }

    /// The cascade in section `s`, which the decision gives `back`: its queue, in join
    /// order, is offered tickets while the entry at its head fits.
    fn cascade_section(&self, run: &mut Run, s: u16, back: &Returned) {
        let (event, leaving) = (run.event, run.leaving);
        let section = &self.state.events[event as usize].sections[s as usize];
        // The queue without the entry that leaves (read in place: queues can be long).
        let queued = self.wait.queues.get(&(event, s));
        let leaves_here = leaving.is_some_and(|c| self.wait.entry(c).section == s) as usize;
        let waiting = queued.map_or(0, |q| q.len()) - leaves_here;
        let queue = queued
            .into_iter()
            .flatten()
            .copied()
            .filter(|&c| Some(c) != leaving);
        let pool = self.wait.set_aside.get(&(event, s));
        let mut tickets = Tickets {
            seated: section.is_seated(),
            pooled: pool.map_or(0, |p| p.count),
            pool_seats: pool.map(|p| p.seats.clone()).unwrap_or_default(),
            fresh: back.qty,
            fresh_seats: back.seats.iter().copied().collect(),
        };
        let mut served = 0;
        for c in queue {
            let entry = self.wait.entry(c);
            if !tickets.fit(entry.qty) {
                break;
            }
            served += 1;
            if self.over_limit(run, entry) || run.next_hold > HOLDS_PER_SHARD_MAX {
                run.steps.push(WaitStep::PassedOver {
                    entry: self.entry_id(c),
                });
                continue;
            }
            run.steps.push(WaitStep::Offered {
                entry: self.entry_id(c),
                hold: HoldId::new(self.state.shard, run.next_hold),
                lines: tickets.take(&section.rows, s, entry.qty),
                total_cents: section.price_cents * u64::from(entry.qty),
                expires_at_ms: run.now_ms + run.offer_ttl_ms,
            });
            run.next_hold += 1;
        }
        run.steps.extend(tickets.leftover(s, served == waiting));
    }

    /// Whether offering `entry` its tickets would take its user past the event's
    /// `max_per_user`, counted after the decision.
    fn over_limit(&self, run: &Run, entry: &Entry) -> bool {
        let e = &self.state.events[run.event as usize];
        e.max_per_user.is_some_and(|max| {
            let mut current = self
                .derived
                .per_user
                .get(&(run.event, entry.user))
                .copied()
                .unwrap_or(0);
            if let Some((u, t)) = run.user_delta {
                if u == entry.user {
                    current -= t;
                }
            }
            current + entry.qty > max
        })
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
        for &(s, q) in items.iter() {
            let i = slot(&mut returned, s);
            returned[i].1.qty += q;
        }
        for &(s, seat) in seats.iter() {
            let i = slot(&mut returned, s);
            returned[i].1.seats.push(seat);
        }
        let delta = self.state.events[hold.event as usize]
            .max_per_user
            .map(|_| (hold.user, crate::state::tickets(&items, &seats)));
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
