//! `apply`: the only mutator, infallible, and all that replay runs. One function per
//! decision kind; tickets move between a section's pools by [`move_tickets`] alone.

use crate::decision::{
    BookingCancelled, Cascaded, Decision, EventCreated, EventCreatedWith, EventSpec, HoldConfirmed,
    HoldExpired, HoldExtended, HoldPlaced, HoldReleased, IdemTag, Lines, Purchased, UserRef,
    WaitStep, WaitlistJoined, WaitlistLeft,
};
use crate::derived::Derived;
use crate::engine::Engine;
use crate::ids::{BookingId, EntryId, HoldId};
use crate::limits::{IDEMPOTENCY_ENTRIES_MAX, IDEMPOTENCY_REFUSALS_MAX, IDEMPOTENCY_RETENTION_MS};
use crate::seat::SeatState;
use crate::state::{
    hold_lines, tickets, Booking, Event, Hold, IdemEntry, IdemOutcome, Line, Row, Section, Status,
};
use crate::waitlist::{Entry, Status as EntryStatus};

/// A hold to record: from a [`HoldPlaced`], a [`Purchased`] (which expires at once) or a
/// waiting list's offer.
struct Placement<'a> {
    hold: HoldId,
    event: u32,
    user: &'a UserRef,
    lines: &'a Lines,
    total_cents: u64,
    at_ms: u64,
    expires_at_ms: u64,
}

/// Where a section's tickets are: on sale, in live holds (set-aside ones included), or
/// sold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pool {
    Free,
    Held,
    Sold,
}

impl Section {
    fn pool(&mut self, pool: Pool) -> Option<&mut u32> {
        match pool {
            Pool::Free => None,
            Pool::Held => Some(&mut self.held),
            Pool::Sold => Some(&mut self.sold),
        }
    }

    /// Moves `qty` tickets from one pool to another.
    fn shift(&mut self, qty: u32, from: Pool, to: Pool) {
        if let Some(count) = self.pool(from) {
            *count -= qty;
        }
        if let Some(count) = self.pool(to) {
            *count += qty;
        }
    }
}

/// Moves the tickets of a hold's lines (GA `items`, `seats`) of `event` from one pool to
/// another: the section counts, each seat's state (to `seat`), and the free-run summaries
/// when seats leave or reach the free pool.
fn move_tickets(
    events: &mut [Event],
    derived: &mut Derived,
    event: u32,
    (items, seats): (&[Line], &[Line]),
    from: Pool,
    to: Pool,
    seat_state: SeatState,
) {
    let e = &mut events[event as usize];
    for &(section, qty) in items {
        e.sections[section as usize].shift(qty, from, to);
    }
    for &(section, seat) in seats {
        let s = &mut e.sections[section as usize];
        debug_assert!(from != Pool::Free || s.seats[seat as usize].is_free());
        s.seats[seat as usize] = seat_state;
        s.shift(1, from, to);
    }
    if from == Pool::Free || to == Pool::Free {
        mark_seats(derived, event, seats, to == Pool::Free);
    }
}

impl Engine {
    /// Applies a decision. Infallible; the only mutator; what replay calls.
    pub fn apply(&mut self, decision: &Decision) {
        let at_ms = decision.at_ms();
        debug_assert!(
            at_ms >= self.state.now_ms,
            "time went back: {at_ms} < {}",
            self.state.now_ms
        );
        self.state.now_ms = self.state.now_ms.max(at_ms);
        let outcome = self.apply_one(decision);
        let state = &self.state;
        self.derived.expiry.pop_stale(|e| !state.is_current(e));
        // Forget first: a key past its retention that comes back is remembered anew,
        // and must not be forgotten with its old recording.
        self.forget_old_keys(at_ms);
        if let Some(tag) = decision.idem() {
            self.remember(tag, at_ms, outcome);
        }
    }

    fn apply_one(&mut self, decision: &Decision) -> IdemOutcome {
        match decision {
            Decision::EventCreated(d) => self.event_created(d),
            Decision::EventCreatedWith(d) => self.event_created_with(d),
            Decision::WaitlistJoined(d) => self.waitlist_joined(d),
            Decision::WaitlistLeft(d) => self.waitlist_left(d),
            Decision::Cascaded(d) => self.cascaded(d),
            Decision::HoldPlaced(d) => self.hold_placed(d),
            Decision::Purchased(d) => self.purchased(d),
            Decision::HoldConfirmed(d) => self.hold_confirmed(d),
            Decision::HoldReleased(d) => self.hold_released(d),
            Decision::HoldExpired(d) => self.hold_expired(d),
            Decision::BookingCancelled(d) => self.booking_cancelled(d),
            Decision::HoldExtended(d) => self.hold_extended(d),
            Decision::Refused(d) => IdemOutcome::Refused(d.refusal.clone()),
        }
    }

    fn event_created(&mut self, d: &EventCreated) -> IdemOutcome {
        IdemOutcome::EventCreated(self.create_event(&d.event, d.at_ms))
    }

    fn event_created_with(&mut self, d: &EventCreatedWith) -> IdemOutcome {
        let index = self.create_event(&d.event, d.at_ms);
        self.wait.offer_ttl_ms.insert(index, d.offer_ttl_ms);
        IdemOutcome::EventCreated(index)
    }

    fn waitlist_joined(&mut self, d: &WaitlistJoined) -> IdemOutcome {
        self.join(d);
        IdemOutcome::Joined(d.entry.counter())
    }

    fn waitlist_left(&mut self, d: &WaitlistLeft) -> IdemOutcome {
        let counter = d.entry.counter32();
        let event = self.wait.entry(counter).event;
        self.leave(counter);
        self.apply_steps(event, &d.steps, d.at_ms);
        IdemOutcome::Left(d.entry.counter())
    }

    fn cascaded(&mut self, d: &Cascaded) -> IdemOutcome {
        let outcome = self.apply_one(&d.base);
        self.apply_steps(d.event, &d.steps, d.base.at_ms());
        outcome
    }

    fn hold_placed(&mut self, d: &HoldPlaced) -> IdemOutcome {
        let counter = self.place(Placement {
            hold: d.hold,
            event: d.event,
            user: &d.user,
            lines: &d.lines,
            total_cents: d.total_cents,
            at_ms: d.at_ms,
            expires_at_ms: d.expires_at_ms,
        });
        IdemOutcome::HoldPlaced(counter.into())
    }

    fn purchased(&mut self, d: &Purchased) -> IdemOutcome {
        let counter = self.place(Placement {
            hold: d.hold,
            event: d.event,
            user: &d.user,
            lines: &d.lines,
            total_cents: d.total_cents,
            at_ms: d.at_ms,
            expires_at_ms: d.at_ms,
        });
        self.confirm(counter, d.booking, d.payment_ref.as_deref(), d.at_ms);
        IdemOutcome::Purchased(d.booking.counter())
    }

    fn hold_confirmed(&mut self, d: &HoldConfirmed) -> IdemOutcome {
        let counter = d.hold.counter32();
        self.confirm(counter, d.booking, d.payment_ref.as_deref(), d.at_ms);
        self.end_offer(counter, EntryStatus::Accepted);
        IdemOutcome::Confirmed(d.booking.counter())
    }

    fn hold_released(&mut self, d: &HoldReleased) -> IdemOutcome {
        self.end_hold(d.hold.counter32(), Status::Released);
        self.end_offer(d.hold.counter32(), EntryStatus::Declined);
        IdemOutcome::Released(d.hold.counter())
    }

    fn hold_expired(&mut self, d: &HoldExpired) -> IdemOutcome {
        self.end_hold(d.hold.counter32(), Status::Expired);
        self.end_offer(d.hold.counter32(), EntryStatus::Expired);
        IdemOutcome::Released(d.hold.counter())
    }

    fn booking_cancelled(&mut self, d: &BookingCancelled) -> IdemOutcome {
        self.cancel(d.booking.counter32(), d.at_ms);
        IdemOutcome::Cancelled(d.booking.counter())
    }

    fn hold_extended(&mut self, d: &HoldExtended) -> IdemOutcome {
        let counter = d.hold.counter32();
        let h = self.state.hold_mut(counter);
        debug_assert_eq!(h.status, Status::Held);
        h.ttl_ms =
            u32::try_from(d.expires_at_ms - h.created_at_ms).expect("a hold lifetime fits in u32");
        self.derived.expiry.push((d.expires_at_ms, counter));
        IdemOutcome::Extended(d.hold.counter())
    }

    fn intern(&mut self, user: &UserRef) -> u32 {
        match user {
            UserRef::Known(i) => {
                assert!(
                    (*i as usize) < self.state.users.len(),
                    "user index {i} is not interned"
                );
                *i
            }
            UserRef::New(user) => {
                if let Some(&i) = self.derived.user_index.get(user) {
                    return i;
                }
                let i = self.state.users.len() as u32;
                self.state.users.push(user.clone());
                self.state.user_bookings.push(Vec::new());
                self.derived.user_index.insert(user.clone(), i);
                i
            }
        }
    }

    fn create_event(&mut self, event: &EventSpec, at_ms: u64) -> u32 {
        let index = self.state.events.len() as u32;
        let mut rows_by_label = std::collections::BTreeMap::new();
        let sections = event
            .sections
            .iter()
            .enumerate()
            .map(|(s, spec)| {
                let mut rows = Vec::new();
                let mut start = 0;
                for (r, (label, count)) in spec.rows.iter().flatten().enumerate() {
                    rows_by_label.insert(label.clone(), (s as u16, r as u32));
                    rows.push(Row {
                        label: label.clone(),
                        count: *count,
                        start,
                    });
                    start += count;
                }
                Section {
                    id: spec.id.clone(),
                    name: spec.name.clone(),
                    price_cents: spec.price_cents,
                    capacity: spec.capacity,
                    held: 0,
                    sold: 0,
                    seats: vec![SeatState::FREE; start as usize],
                    rows,
                }
            })
            .collect();
        self.state.events.push(Event {
            id: event.id.clone(),
            name: event.name.clone(),
            starts_at_ms: event.starts_at_ms,
            max_per_user: event.max_per_user,
            hold_ttl_ms: event.hold_ttl_ms,
            created_at_ms: at_ms,
            sections,
            rows_by_label,
            bookings: Vec::new(),
        });
        let summaries = Derived::summaries_of(self.state.events.last().expect("just pushed"));
        self.derived.summaries.push(summaries);
        self.state.event_index.insert(event.id.clone(), index);
        index
    }

    fn place(&mut self, p: Placement<'_>) -> u32 {
        assert_eq!(p.hold, self.next_hold_id(), "holds are applied in id order");
        let counter = p.hold.counter32();
        let user = self.intern(p.user);
        let lines = p.lines;
        let state = &mut self.state;
        move_tickets(
            &mut state.events,
            &mut self.derived,
            p.event,
            (&lines.items, &lines.seats),
            Pool::Free,
            Pool::Held,
            SeatState::held(counter.into()),
        );
        if state.events[p.event as usize].max_per_user.is_some() {
            *self.derived.per_user.entry((p.event, user)).or_default() += lines.tickets();
        }
        let lines_at = state.lines.len() as u64;
        state.lines.extend_from_slice(&lines.items);
        state.lines.extend_from_slice(&lines.seats);
        state.holds.push(Hold {
            total_cents: p.total_cents,
            created_at_ms: p.at_ms,
            lines_at,
            ttl_ms: u32::try_from(p.expires_at_ms - p.at_ms).expect("a hold TTL fits in u32"),
            event: p.event,
            user,
            items: u8::try_from(lines.items.len()).expect("items per hold fit in u8"),
            seats: u8::try_from(lines.seats.len()).expect("seats per hold fit in u8"),
            status: Status::Held,
        });
        self.derived.expiry.push((p.expires_at_ms, counter));
        self.derived.live_holds += 1;
        counter
    }

    fn confirm(
        &mut self,
        hold_counter: u32,
        booking: BookingId,
        payment_ref: Option<&str>,
        at_ms: u64,
    ) {
        assert_eq!(
            booking,
            self.next_booking_id(),
            "bookings are applied in id order"
        );
        let booking_counter = booking.counter32();
        let state = &mut self.state;
        let hold = state.hold_mut(hold_counter);
        debug_assert_eq!(hold.status, Status::Held);
        hold.status = Status::Confirmed;
        self.derived.live_holds -= 1;
        let hold = &state.holds[crate::ids::slot(hold_counter)];
        let (event, user) = (hold.event, hold.user);
        let (items, seats) = hold_lines(&state.lines, hold);
        move_tickets(
            &mut state.events,
            &mut self.derived,
            event,
            (&items, &seats),
            Pool::Held,
            Pool::Sold,
            SeatState::sold(booking_counter.into()),
        );
        state.events[event as usize].bookings.push(booking_counter);
        state.user_bookings[user as usize].push(booking_counter);
        let payment_at =
            u32::try_from(state.payment_refs.len()).expect("decide bounds the payment arena");
        let payment_len = payment_ref.map_or(0, |p| {
            state.payment_refs.push_str(p);
            u8::try_from(p.len()).expect("a payment reference fits in 255 bytes")
        });
        state.bookings.push(Booking {
            created_at_ms: at_ms,
            payment_at,
            hold: hold_counter,
            payment_len,
            cancelled: false,
        });
    }

    /// Release or expiry: the hold's inventory returns to sale.
    fn end_hold(&mut self, counter: u32, status: Status) {
        let hold = self.state.hold_mut(counter);
        debug_assert_eq!(hold.status, Status::Held);
        hold.status = status;
        self.derived.live_holds -= 1;
        self.return_tickets(counter, Pool::Held);
    }

    fn cancel(&mut self, booking_counter: u32, at_ms: u64) {
        let booking = self.state.booking_mut(booking_counter);
        debug_assert!(!booking.is_cancelled());
        booking.cancelled = true;
        let hold = booking.hold;
        self.state.cancelled_at.insert(booking_counter, at_ms);
        self.return_tickets(hold, Pool::Sold);
    }

    /// Hold `counter`'s tickets go back on sale from `from`, and off its user's count.
    fn return_tickets(&mut self, counter: u32, from: Pool) {
        let state = &mut self.state;
        let hold = &state.holds[crate::ids::slot(counter)];
        let (items, seats) = hold_lines(&state.lines, hold);
        move_tickets(
            &mut state.events,
            &mut self.derived,
            hold.event,
            (&items, &seats),
            from,
            Pool::Free,
            SeatState::FREE,
        );
        if state.events[hold.event as usize].max_per_user.is_some() {
            self.derived
                .uncount(hold.event, hold.user, tickets(&items, &seats));
        }
    }

    fn remember(&mut self, tag: &IdemTag, at_ms: u64, outcome: IdemOutcome) {
        let key = (tag.scope.clone(), tag.key.clone());
        let refused = matches!(outcome, IdemOutcome::Refused(_));
        let entry = IdemEntry {
            fingerprint: tag.fingerprint,
            at_ms,
            outcome,
        };
        // `decide` replays a key it remembers, so a decision of this release never
        // carries one that is still remembered (an expired recording was forgotten just
        // before). A log of an earlier release can: it forgot expired keys after recording
        // a new one, so a key reused at the very moment it expired was decided a third
        // time. Its old recording then leaves its retention order, so each key stays in
        // exactly one place.
        if let Some(old) = self.state.idem.insert(key, entry) {
            self.unorder(tag, &old);
        }
        let order = (at_ms, tag.scope.clone(), tag.key.clone());
        if refused {
            self.derived.refusals.insert(order);
            if self.derived.refusals.len() > IDEMPOTENCY_REFUSALS_MAX {
                let (_, scope, key) = self.derived.refusals.pop_first().expect("not empty");
                self.state.idem.remove(&(scope, key));
            }
        } else {
            self.state.idem_order.push_back(order);
            if self.state.idem_order.len() > IDEMPOTENCY_ENTRIES_MAX {
                let (_, scope, key) = self.state.idem_order.pop_front().expect("not empty");
                self.state.idem.remove(&(scope, key));
            }
        }
    }

    /// Takes a replaced recording of `tag`'s key out of its retention order (logs of an
    /// earlier release only: see `remember`).
    fn unorder(&mut self, tag: &IdemTag, old: &IdemEntry) {
        let order = (old.at_ms, tag.scope.clone(), tag.key.clone());
        if matches!(old.outcome, IdemOutcome::Refused(_)) {
            self.derived.refusals.remove(&order);
        } else if let Some(at) = self.state.idem_order.iter().position(|o| *o == order) {
            self.state.idem_order.remove(at);
        }
    }

    /// Drops keys older than the retention.
    fn forget_old_keys(&mut self, now_ms: u64) {
        let expired = |at_ms: u64| at_ms + IDEMPOTENCY_RETENTION_MS <= now_ms;
        while let Some((at_ms, _, _)) = self.state.idem_order.front() {
            if !expired(*at_ms) {
                break;
            }
            let (_, scope, key) = self.state.idem_order.pop_front().expect("front exists");
            self.state.idem.remove(&(scope, key));
        }
        while let Some((at_ms, _, _)) = self.derived.refusals.first() {
            if !expired(*at_ms) {
                break;
            }
            let (_, scope, key) = self.derived.refusals.pop_first().expect("first exists");
            self.state.idem.remove(&(scope, key));
        }
    }

    fn join(&mut self, d: &WaitlistJoined) {
        let counter = d.entry.counter32();
        assert_eq!(
            counter as usize,
            self.wait.entries.len() + 1,
            "entries are applied in id order"
        );
        let user = self.intern(&d.user);
        let event = d.event;
        self.wait.entries.push(Entry {
            created_at_ms: d.at_ms,
            event,
            user,
            qty: d.qty,
            hold: 0,
            section: d.section,
            status: EntryStatus::Waiting,
        });
        self.wait
            .queues
            .entry((event, d.section))
            .or_default()
            .push_back(counter);
        self.derived.live_entry.insert((event, user), counter);
        *self.derived.live_per_event.entry(event).or_default() += 1;
    }

    /// Takes a waiting entry out of its queue.
    fn dequeue(&mut self, counter: u32) {
        let entry = self.wait.entry(counter);
        let key = (entry.event, entry.section);
        let queue = self
            .wait
            .queues
            .get_mut(&key)
            .expect("a waiting entry is queued");
        if queue.front() == Some(&counter) {
            // Offers and pass-overs take the head: no search.
            queue.pop_front();
        } else {
            let at = queue
                .iter()
                .position(|&c| c == counter)
                .expect("a waiting entry is in its queue");
            queue.remove(at);
        }
        if queue.is_empty() {
            self.wait.queues.remove(&key);
        }
    }

    fn end_entry(&mut self, counter: u32, status: EntryStatus) {
        let entry = self.wait.entry_mut(counter);
        entry.status = status;
        let (event, key) = (entry.event, (entry.event, entry.user));
        self.derived.live_entry.remove(&key);
        let live = self
            .derived
            .live_per_event
            .get_mut(&event)
            .expect("a live entry is counted");
        *live -= 1;
        if *live == 0 {
            self.derived.live_per_event.remove(&event);
        }
    }

    fn leave(&mut self, counter: u32) {
        match self.wait.entry(counter).status {
            EntryStatus::Waiting => self.dequeue(counter),
            EntryStatus::Offered => {
                let hold = self.wait.entry(counter).hold;
                self.derived.offer_of.remove(&hold);
                self.end_hold(hold, Status::Released);
            }
            other => unreachable!("decide lets only live entries leave, not {other:?}"),
        }
        self.end_entry(counter, EntryStatus::Left);
    }

    /// The hold ended (confirmed, released, expired): if it was an offer, so is its entry.
    fn end_offer(&mut self, hold: u32, status: EntryStatus) {
        if self.derived.offer_of.is_empty() {
            return;
        }
        if let Some(entry) = self.derived.offer_of.remove(&hold) {
            self.end_entry(entry, status);
        }
    }

    fn apply_steps(&mut self, event: u32, steps: &[WaitStep], at_ms: u64) {
        for step in steps {
            match step {
                WaitStep::SetAside {
                    section,
                    qty,
                    seats,
                } => self.set_aside(event, *section, *qty, seats),
                WaitStep::BackOnSale {
                    section,
                    qty,
                    seats,
                } => self.back_on_sale(event, *section, *qty, seats),
                WaitStep::PassedOver { entry } => {
                    let counter = entry.counter32();
                    self.dequeue(counter);
                    self.end_entry(counter, EntryStatus::Expired);
                }
                WaitStep::Offered {
                    entry,
                    hold,
                    lines,
                    total_cents,
                    expires_at_ms,
                } => {
                    let user = UserRef::Known(self.wait.entry(entry.counter32()).user);
                    let placement = Placement {
                        hold: *hold,
                        event,
                        user: &user,
                        lines,
                        total_cents: *total_cents,
                        at_ms,
                        expires_at_ms: *expires_at_ms,
                    };
                    self.offer(*entry, placement);
                }
            }
        }
    }

    fn set_aside(&mut self, event: u32, section: u16, qty: u32, seats: &[u32]) {
        let s = &mut self.state.events[event as usize].sections[section as usize];
        let pool = self.wait.set_aside.entry((event, section)).or_default();
        s.held += qty + seats.len() as u32;
        pool.count += qty + seats.len() as u32;
        for &seat in seats {
            debug_assert!(s.seats[seat as usize].is_free());
            s.seats[seat as usize] = SeatState::SET_ASIDE;
            pool.seats.insert(seat);
        }
        if !seats.is_empty() {
            self.derived
                .summary(event, section)
                .set(seats.iter().copied(), false);
        }
    }

    fn back_on_sale(&mut self, event: u32, section: u16, qty: u32, seats: &[u32]) {
        let s = &mut self.state.events[event as usize].sections[section as usize];
        let key = (event, section);
        let pool = self.wait.set_aside.get_mut(&key).expect("set aside");
        s.held -= qty + seats.len() as u32;
        pool.count -= qty + seats.len() as u32;
        for &seat in seats {
            debug_assert!(s.seats[seat as usize].is_set_aside());
            s.seats[seat as usize] = SeatState::FREE;
            pool.seats.remove(&seat);
        }
        if pool.count == 0 {
            self.wait.set_aside.remove(&key);
        }
        if !seats.is_empty() {
            self.derived
                .summary(event, section)
                .set(seats.iter().copied(), true);
        }
    }

    /// An offer to `entry`: it takes set-aside tickets first (they leave the pool), then
    /// free ones, as its hold; an ordinary hold takes them all.
    fn offer(&mut self, entry: EntryId, p: Placement<'_>) {
        let counter = entry.counter32();
        let event = p.event;
        let e = &mut self.state.events[event as usize];
        let pooled = !self.wait.set_aside.is_empty();
        for &(section, qty) in p.lines.items.iter().filter(|_| pooled) {
            let key = (event, section);
            if let Some(pool) = self.wait.set_aside.get_mut(&key) {
                let taken = pool.count.min(qty);
                pool.count -= taken;
                e.sections[section as usize].held -= taken;
                if pool.count == 0 {
                    self.wait.set_aside.remove(&key);
                }
            }
        }
        for &(section, seat) in &p.lines.seats {
            let s = &mut e.sections[section as usize];
            if !s.seats[seat as usize].is_set_aside() {
                debug_assert!(s.seats[seat as usize].is_free());
                continue;
            }
            let key = (event, section);
            let pool = self.wait.set_aside.get_mut(&key).expect("set aside");
            s.seats[seat as usize] = SeatState::FREE;
            s.held -= 1;
            pool.count -= 1;
            pool.seats.remove(&seat);
            if pool.count == 0 {
                self.wait.set_aside.remove(&key);
            }
        }
        let hold_counter = self.place(p);
        self.dequeue(counter);
        let e = self.wait.entry_mut(counter);
        e.status = EntryStatus::Offered;
        e.hold = hold_counter;
        self.derived.offer_of.insert(hold_counter, counter);
    }
}

/// Tells the free-run summaries that `seats` became free (or taken).
pub(crate) fn mark_seats(derived: &mut Derived, event: u32, seats: &[(u16, u32)], free: bool) {
    let mut rest = seats;
    while let Some(&(section, _)) = rest.first() {
        let same = rest.iter().take_while(|&&(s, _)| s == section).count();
        derived
            .summary(event, section)
            .set(rest[..same].iter().map(|&(_, seat)| seat), free);
        rest = &rest[same..];
    }
}
