//! Reads: views of events, seats, holds and bookings, and the reply to a decision.

use crate::command::{Actor, BookingQuery};
use crate::decision::{
    BookingCancelled, Cascaded, Decision, EventCreated, EventCreatedWith, HoldConfirmed,
    HoldExpired, HoldExtended, HoldPlaced, HoldReleased, Purchased, Refused, WaitlistJoined,
    WaitlistLeft,
};
use crate::engine::Engine;
use crate::ids::{BookingId, HoldId};
use crate::limits::PAGE_LIMIT_MAX;
use crate::rejection::Rejection;
use crate::state::{Hold, Status};
use crate::view::*;

impl Engine {
    pub(crate) fn event_view(&self, index: u32) -> EventView {
        let e = &self.state.events[index as usize];
        EventView {
            id: e.id.clone(),
            name: e.name.clone(),
            starts_at_ms: e.starts_at_ms,
            max_per_user: e.max_per_user,
            hold_ttl_ms: e.hold_ttl_ms,
            offer_ttl_ms: self
                .wait
                .offer_ttl_ms
                .get(&index)
                .copied()
                .unwrap_or(e.hold_ttl_ms),
            created_at_ms: e.created_at_ms,
            sections: e
                .sections
                .iter()
                .enumerate()
                .map(|(i, s)| SectionView {
                    waiting: self.wait.waiting(index, i as u16),
                    set_aside: self.wait.set_aside_count(index, i as u16),
                    id: s.id.clone(),
                    name: s.name.clone(),
                    price_cents: s.price_cents,
                    kind: if s.is_seated() {
                        SectionKind::Seated
                    } else {
                        SectionKind::General
                    },
                    capacity: s.capacity,
                    available: s.available(),
                    held: s.held,
                    sold: s.sold,
                    rows: s
                        .rows
                        .iter()
                        .map(|r| RowView {
                            label: r.label.clone(),
                            count: r.count,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// One event with live counts.
    pub fn event(&self, event_id: &str) -> Option<EventView> {
        self.state
            .event_index
            .get(event_id)
            .map(|&i| self.event_view(i))
    }

    /// Events ordered by id, those with id > `after`, at most `limit`.
    pub fn events(&self, after: Option<&str>, limit: usize) -> Vec<EventView> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        self.state
            .event_index
            .range((lower, Bound::Unbounded))
            .take(limit.min(PAGE_LIMIT_MAX + 1))
            .map(|(_, &i)| self.event_view(i))
            .collect()
    }

    /// Every seat of the event's seated sections.
    pub fn seat_map(&self, event_id: &str) -> Option<SeatMapView> {
        let e = &self.state.events[*self.state.event_index.get(event_id)? as usize];
        Some(SeatMapView {
            event_id: e.id.clone(),
            sections: e
                .sections
                .iter()
                .filter(|s| s.is_seated())
                .map(|s| SeatSectionView {
                    section_id: s.id.clone(),
                    name: s.name.clone(),
                    rows: s
                        .rows
                        .iter()
                        .map(|r| SeatRowView {
                            label: r.label.clone(),
                            seats: s.seats[r.start as usize..(r.start + r.count) as usize]
                                .iter()
                                .map(|st| st.status())
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    fn lines_view(&self, hold: &Hold) -> (Vec<ItemView>, Vec<String>) {
        let e = &self.state.events[hold.event as usize];
        let (items, seats) = self.state.lines_of(hold);
        let items = items
            .iter()
            .map(|&(s, qty)| ItemView {
                section_id: e.sections[s as usize].id.clone(),
                qty,
            })
            .collect();
        let seats = seats
            .iter()
            .map(|&(s, seat)| e.sections[s as usize].seat_label(seat))
            .collect();
        (items, seats)
    }

    pub(crate) fn hold_view_as(&self, counter: u64, status: HoldStatus) -> HoldView {
        let id = HoldId::new(self.shard(), counter);
        let hold = self.state.hold(id.counter32());
        let (items, seats) = self.lines_view(hold);
        HoldView {
            id,
            event_id: self.state.events[hold.event as usize].id.clone(),
            user_id: self.state.users[hold.user as usize].clone(),
            status,
            items,
            seats,
            total_cents: hold.total_cents,
            created_at_ms: hold.created_at_ms,
            expires_at_ms: hold.expires_at_ms(),
        }
    }

    fn status_at(hold: &Hold, now_ms: u64) -> HoldStatus {
        match hold.status {
            Status::Held if now_ms >= hold.expires_at_ms() => HoldStatus::Expired,
            Status::Held => HoldStatus::Held,
            Status::Confirmed => HoldStatus::Confirmed,
            Status::Released => HoldStatus::Released,
            Status::Expired => HoldStatus::Expired,
        }
    }

    /// A hold as `actor` may see it (another user's hold is `not_found`); status at `now_ms`.
    pub fn hold(&self, hold_id: HoldId, actor: &Actor, now_ms: u64) -> Result<HoldView, Rejection> {
        let hold = self.owned_hold(hold_id, actor)?;
        Ok(self.hold_view_as(hold_id.counter(), Self::status_at(hold, now_ms)))
    }

    pub(crate) fn booking_view(&self, id: BookingId) -> BookingView {
        let booking = self.state.booking(id.counter32());
        let hold = self.state.hold(booking.hold);
        let (items, seats) = self.lines_view(hold);
        BookingView {
            id,
            hold_id: HoldId::new(self.shard(), booking.hold.into()),
            event_id: self.state.events[hold.event as usize].id.clone(),
            user_id: self.state.users[hold.user as usize].clone(),
            status: if booking.is_cancelled() {
                BookingStatus::Cancelled
            } else {
                BookingStatus::Confirmed
            },
            items,
            seats,
            total_cents: hold.total_cents,
            payment_ref: self.state.payment_ref(booking).map(str::to_string),
            created_at_ms: booking.created_at_ms,
            cancelled_at_ms: self.state.cancelled_at.get(&id.counter32()).copied(),
        }
    }

    /// A booking as `actor` may see it.
    pub fn booking(&self, booking_id: BookingId, actor: &Actor) -> Result<BookingView, Rejection> {
        self.owned_booking(booking_id, actor)?;
        Ok(self.booking_view(booking_id))
    }

    /// Bookings matching the query, newest first (by (created_at_ms, id) descending),
    /// strictly older than `query.before`. At most `min(limit, PAGE_LIMIT_MAX + 1)`: the
    /// one beyond a full page tells the caller there is a next page.
    ///
    /// Reads only the per-event or per-user booking list (the shorter when both filters
    /// are given) from the cursor down; with no filter, the bookings from the cursor down.
    pub fn bookings(&self, query: &BookingQuery) -> Vec<BookingView> {
        let limit = query.limit.min(PAGE_LIMIT_MAX + 1);
        let event = match &query.event_id {
            Some(id) => match self.state.event_index.get(id) {
                Some(&i) => Some(i),
                None => return Vec::new(),
            },
            None => None,
        };
        let user = match &query.user_id {
            Some(u) => match self.user_index(u) {
                Some(i) => Some(i),
                None => return Vec::new(),
            },
            None => None,
        };
        let shard = self.shard();
        let key = |counter: u32| {
            (
                self.state.booking(counter).created_at_ms,
                BookingId::new(shard, counter.into()),
            )
        };
        // Counters ascend with (created_at_ms, id), since time never goes back, so
        // "older than the cursor" is a prefix of any list in counter order.
        let older = |c: u32| query.before.is_none_or(|cursor| key(c) < cursor);
        let matches = |c: u32| {
            let hold = self.state.hold(self.state.booking(c).hold);
            event.is_none_or(|e| hold.event == e) && user.is_none_or(|u| hold.user == u)
        };
        let list: Option<&[u32]> = match (event, user) {
            (Some(e), Some(u)) => {
                let by_event = &self.state.events[e as usize].bookings;
                let by_user = &self.state.user_bookings[u as usize];
                Some(if by_user.len() < by_event.len() {
                    by_user
                } else {
                    by_event
                })
            }
            (Some(e), None) => Some(&self.state.events[e as usize].bookings),
            (None, Some(u)) => Some(&self.state.user_bookings[u as usize]),
            (None, None) => None,
        };
        let view = |c: u32| self.booking_view(BookingId::new(shard, c.into()));
        match list {
            Some(list) => {
                let end = list.partition_point(|&c| older(c));
                list[..end]
                    .iter()
                    .rev()
                    .copied()
                    .filter(|&c| matches(c))
                    .take(limit)
                    .map(view)
                    .collect()
            }
            None => {
                let all = self.state.bookings.len() as u32;
                let mut lo = 1u32;
                let mut hi = all + 1; // first counter not older than the cursor
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if older(mid) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                (1..lo).rev().take(limit).map(view).collect()
            }
        }
    }

    /// The reply to a decision just applied, with statuses as of `now_ms` (a remembered
    /// refusal's is its rejection).
    pub fn output(&self, decision: &Decision, now_ms: u64) -> Result<Output, Rejection> {
        Ok(match decision {
            Decision::EventCreated(EventCreated { event, .. })
            | Decision::EventCreatedWith(EventCreatedWith { event, .. }) => {
                Output::Event(self.event(&event.id).expect("just created"))
            }
            Decision::WaitlistJoined(WaitlistJoined { entry, .. })
            | Decision::WaitlistLeft(WaitlistLeft { entry, .. }) => {
                Output::Entry(self.entry_view(entry.counter32(), now_ms))
            }
            Decision::Cascaded(Cascaded { base, .. }) => return self.output(base, now_ms),
            Decision::Refused(Refused { refusal, .. }) => return Err(refusal.into()),
            Decision::HoldPlaced(HoldPlaced { hold, .. })
            | Decision::HoldExtended(HoldExtended { hold, .. }) => {
                Output::Hold(self.hold_view_as(hold.counter(), HoldStatus::Held))
            }
            Decision::HoldReleased(HoldReleased { hold, .. })
            | Decision::HoldExpired(HoldExpired { hold, .. }) => {
                let h = self.state.hold(hold.counter32());
                Output::Hold(self.hold_view_as(hold.counter(), Self::status_at(h, now_ms)))
            }
            Decision::Purchased(Purchased { booking, .. })
            | Decision::HoldConfirmed(HoldConfirmed { booking, .. })
            | Decision::BookingCancelled(BookingCancelled { booking, .. }) => {
                Output::Booking(self.booking_view(*booking))
            }
        })
    }

    pub(crate) fn entry_view(&self, counter: u32, now_ms: u64) -> EntryView {
        use crate::waitlist::Status as S;
        let entry = self.wait.entry(counter);
        let e = &self.state.events[entry.event as usize];
        let offer = (entry.hold != 0).then(|| self.state.hold(entry.hold));
        let status = match entry.status {
            S::Offered if offer.is_some_and(|h| now_ms >= h.expires_at_ms()) => S::Expired,
            status => status,
        };
        let position = (entry.status == S::Waiting).then(|| {
            let queue = &self.wait.queues[&(entry.event, entry.section)];
            queue.iter().position(|&c| c == counter).expect("queued") as u32 + 1
        });
        EntryView {
            id: self.entry_id(counter),
            event_id: e.id.clone(),
            user_id: self.state.users[entry.user as usize].clone(),
            section_id: e.sections[entry.section as usize].id.clone(),
            qty: entry.qty,
            status,
            position,
            created_at_ms: entry.created_at_ms,
            hold_id: offer.map(|_| HoldId::new(self.shard(), entry.hold.into())),
            offer_expires_at_ms: offer.map(Hold::expires_at_ms),
        }
    }

    pub(crate) fn owned_entry(
        &self,
        id: crate::ids::EntryId,
        actor: &Actor,
    ) -> Result<&crate::waitlist::Entry, Rejection> {
        (id.shard() == self.shard())
            .then(|| self.wait.entries.get(id.slot()))
            .flatten()
            .filter(|entry| self.may_see(actor, entry.user))
            .ok_or(Rejection::NotFound { what: "entry" })
    }

    /// A waiting-list entry as `actor` may see it (another user's is `not_found`).
    pub fn waitlist_entry(
        &self,
        entry_id: crate::ids::EntryId,
        actor: &Actor,
        now_ms: u64,
    ) -> Result<EntryView, Rejection> {
        self.owned_entry(entry_id, actor)?;
        Ok(self.entry_view(entry_id.counter32(), now_ms))
    }

    /// Counters for metrics.
    pub fn stats(&self) -> Stats {
        let (mut sold, mut held, mut sold_out) = (0u64, 0u64, 0u64);
        for e in &self.state.events {
            for s in &e.sections {
                sold += u64::from(s.sold);
                held += u64::from(s.held);
                sold_out += u64::from(s.available() == 0);
            }
        }
        Stats {
            events: self.state.events.len() as u64,
            holds_live: self.derived.live_holds as u64,
            tickets_sold: sold,
            tickets_held: held,
            sections_sold_out: sold_out,
            bookings: self.state.bookings.len() as u64,
            idempotency_entries: self.state.idem.len() as u64,
        }
    }
}

impl Engine {
    /// The status of one seat (`A-12`) of an event, if both exist: what a live view needs
    /// for the seats a decision touched, without building the whole seat map.
    pub fn seat_status(&self, event_id: &str, seat: &str) -> Option<SeatStatus> {
        let e = &self.state.events[*self.state.event_index.get(event_id)? as usize];
        let (section, index) = e.find_seat(seat)?;
        Some(e.sections[section as usize].seats[index as usize].status())
    }
}

impl Engine {
    /// The id of the event at `index` on this shard (decisions name events by index), if
    /// there is one.
    pub fn event_id_at(&self, index: u32) -> Option<&str> {
        self.state.events.get(index as usize).map(|e| e.id.as_str())
    }

    /// The index of an event on this shard (as decisions name it), if it exists.
    pub fn event_index_of(&self, event_id: &str) -> Option<u32> {
        self.state.event_index.get(event_id).copied()
    }

    /// The seat ids (`A-12`) of seat indexes of a section of the event at `index`, as
    /// decisions name seats; indexes of no seat are left out.
    pub fn seat_ids_at(&self, index: u32, section: u16, seats: &[u32]) -> Vec<String> {
        let Some(section) = self
            .state
            .events
            .get(index as usize)
            .and_then(|e| e.sections.get(usize::from(section)))
        else {
            return Vec::new();
        };
        seats
            .iter()
            .filter(|&&seat| (seat as usize) < section.seats.len())
            .map(|&seat| section.seat_label(seat))
            .collect()
    }
}
