//! The shard's state machine: `decide` (pure, in decide.rs) then `apply` (the only
//! mutator, here). Reads are in query.rs, invariants in invariants.rs.

use crate::codec;
use crate::decision::{
    BookingCancelled, Cascaded, Decision, EventCreated, EventCreatedWith, EventSpec, HoldConfirmed,
    HoldExpired, HoldExtended, HoldPlaced, HoldReleased, IdemScope, IdemTag, Lines, Purchased,
    UserRef, WaitStep, WaitlistJoined, WaitlistLeft,
};
use crate::ids::{BookingId, EntryId, HoldId};
use crate::limits::{IDEMPOTENCY_ENTRIES_MAX, IDEMPOTENCY_RETENTION_MS};
use crate::seat::SeatState;
use crate::state::{
    hold_lines, tickets, Booking, Derived, Event, Hold, IdemEntry, IdemOutcome, Row, Section,
    State, Status,
};
use crate::view::Output;
use crate::waitlist::{Entry, Status as EntryStatus, Waitlists};

/// What `decide` concluded for an accepted command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// A change: log it, apply it, answer with [`Engine::output`].
    Change(Decision),
    /// An idempotent retry of an earlier success: its remembered answer. Answer this,
    /// log nothing (the name is not about log replay, which only applies decisions).
    Remembered(Output),
}

/// Errors decoding a decision or snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot decode: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

/// One shard's inventory, holds, bookings and idempotency keys.
#[derive(Clone)]
pub struct Engine {
    pub(crate) state: State,
    pub(crate) wait: Waitlists,
    pub(crate) derived: Derived,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("shard", &self.state.shard)
            .field("now_ms", &self.state.now_ms)
            .field("events", &self.state.events.len())
            .field("holds", &self.state.holds.len())
            .field("bookings", &self.state.bookings.len())
            .finish()
    }
}

impl Engine {
    /// An empty engine for shard `shard`; its hold and booking ids carry that number.
    pub fn new(shard: u16) -> Self {
        Engine {
            state: State {
                shard,
                ..State::default()
            },
            wait: Waitlists::default(),
            derived: Derived::default(),
        }
    }

    /// The shard number given at construction.
    pub fn shard(&self) -> u16 {
        self.state.shard
    }

    /// Time of the last applied decision (0 for a new engine).
    pub fn now_ms(&self) -> u64 {
        self.state.now_ms
    }

    pub(crate) fn next_hold_id(&self) -> HoldId {
        HoldId::new(self.state.shard, self.state.holds.len() as u64 + 1)
    }

    pub(crate) fn next_booking_id(&self) -> BookingId {
        BookingId::new(self.state.shard, self.state.bookings.len() as u64 + 1)
    }

    pub(crate) fn hold_at(&self, id: HoldId) -> Option<&Hold> {
        if id.shard() != self.state.shard {
            return None;
        }
        self.state.holds.get(id.counter() as usize - 1)
    }

    pub(crate) fn booking_at(&self, id: BookingId) -> Option<&Booking> {
        if id.shard() != self.state.shard {
            return None;
        }
        self.state.bookings.get(id.counter() as usize - 1)
    }

    pub(crate) fn user_index(&self, user: &str) -> Option<u32> {
        self.derived.user_index.get(user).copied()
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
        if let Some(tag) = decision.idem() {
            self.remember(tag, at_ms, outcome);
        }
        self.forget_old_keys(at_ms);
    }

    fn apply_one(&mut self, decision: &Decision) -> IdemOutcome {
        match decision {
            Decision::EventCreated(EventCreated { at_ms, event, .. }) => {
                IdemOutcome::EventCreated(self.create_event(event, *at_ms))
            }
            Decision::EventCreatedWith(EventCreatedWith {
                at_ms,
                event,
                offer_ttl_ms,
                ..
            }) => {
                let index = self.create_event(event, *at_ms);
                self.wait.offer_ttl_ms.insert(index, *offer_ttl_ms);
                IdemOutcome::EventCreated(index)
            }
            Decision::WaitlistJoined(WaitlistJoined {
                at_ms,
                entry,
                event,
                section,
                user,
                qty,
                ..
            }) => {
                self.join(*entry, *event, *section, user, *qty, *at_ms);
                IdemOutcome::Joined(entry.counter())
            }
            Decision::WaitlistLeft(WaitlistLeft {
                at_ms,
                entry,
                steps,
                ..
            }) => {
                let counter = counter32(entry.counter());
                let event = self.wait.entries[counter as usize - 1].event;
                self.leave(counter);
                self.apply_steps(event, steps, *at_ms);
                IdemOutcome::Left(entry.counter())
            }
            Decision::Cascaded(Cascaded { base, event, steps }) => {
                let outcome = self.apply_one(base);
                self.apply_steps(*event, steps, base.at_ms());
                outcome
            }
            Decision::HoldPlaced(HoldPlaced {
                at_ms,
                hold,
                event,
                user,
                lines,
                total_cents,
                expires_at_ms,
                ..
            }) => {
                let counter = self.place(
                    *hold,
                    *event,
                    user,
                    lines,
                    *total_cents,
                    *at_ms,
                    *expires_at_ms,
                );
                IdemOutcome::HoldPlaced(counter.into())
            }
            Decision::Purchased(Purchased {
                at_ms,
                hold,
                booking,
                event,
                user,
                lines,
                total_cents,
                payment_ref,
                ..
            }) => {
                let counter = self.place(*hold, *event, user, lines, *total_cents, *at_ms, *at_ms);
                self.confirm(counter, *booking, payment_ref.as_deref(), *at_ms);
                IdemOutcome::Purchased(booking.counter())
            }
            Decision::HoldConfirmed(HoldConfirmed {
                at_ms,
                hold,
                booking,
                payment_ref,
                ..
            }) => {
                self.confirm(
                    counter32(hold.counter()),
                    *booking,
                    payment_ref.as_deref(),
                    *at_ms,
                );
                self.end_offer(counter32(hold.counter()), EntryStatus::Accepted);
                IdemOutcome::Confirmed(booking.counter())
            }
            Decision::HoldReleased(HoldReleased { hold, .. }) => {
                self.end_hold(counter32(hold.counter()), Status::Released);
                self.end_offer(counter32(hold.counter()), EntryStatus::Declined);
                IdemOutcome::Released(hold.counter())
            }
            Decision::HoldExpired(HoldExpired { hold, .. }) => {
                self.end_hold(counter32(hold.counter()), Status::Expired);
                self.end_offer(counter32(hold.counter()), EntryStatus::Expired);
                IdemOutcome::Released(hold.counter())
            }
            Decision::BookingCancelled(BookingCancelled { at_ms, booking, .. }) => {
                self.cancel(counter32(booking.counter()), *at_ms);
                IdemOutcome::Cancelled(booking.counter())
            }
            Decision::HoldExtended(HoldExtended {
                hold,
                expires_at_ms,
                ..
            }) => {
                let counter = counter32(hold.counter());
                let h = &mut self.state.holds[counter as usize - 1];
                debug_assert_eq!(h.status, Status::Held);
                h.ttl_ms = u32::try_from(expires_at_ms - h.created_at_ms)
                    .expect("a hold lifetime fits in u32");
                self.derived.expiry.push((*expires_at_ms, counter));
                IdemOutcome::Extended(hold.counter())
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

    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        hold: HoldId,
        event: u32,
        user: &UserRef,
        lines: &Lines,
        total_cents: u64,
        at_ms: u64,
        expires_at_ms: u64,
    ) -> u32 {
        assert_eq!(hold, self.next_hold_id(), "holds are applied in id order");
        let counter = counter32(hold.counter());
        let user = self.intern(user);
        let state = &mut self.state;
        let e = &mut state.events[event as usize];
        for &(section, qty) in &lines.items {
            e.sections[section as usize].held += qty;
        }
        for &(section, seat) in &lines.seats {
            let s = &mut e.sections[section as usize];
            debug_assert!(s.seats[seat as usize].is_free());
            s.seats[seat as usize] = SeatState::held(counter.into());
            s.held += 1;
        }
        mark_seats(&mut self.derived, event, &lines.seats, false);
        if e.max_per_user.is_some() {
            *self.derived.per_user.entry((event, user)).or_default() += lines.tickets();
        }
        let lines_at = state.lines.len() as u64;
        state.lines.extend_from_slice(&lines.items);
        state.lines.extend_from_slice(&lines.seats);
        state.holds.push(Hold {
            total_cents,
            created_at_ms: at_ms,
            lines_at,
            ttl_ms: u32::try_from(expires_at_ms - at_ms).expect("a hold TTL fits in u32"),
            event,
            user,
            items: u8::try_from(lines.items.len()).expect("items per hold fit in u8"),
            seats: u8::try_from(lines.seats.len()).expect("seats per hold fit in u8"),
            status: Status::Held,
        });
        self.derived.expiry.push((expires_at_ms, counter));
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
        let booking_counter = counter32(booking.counter());
        let state = &mut self.state;
        let hold = &mut state.holds[hold_counter as usize - 1];
        debug_assert_eq!(hold.status, Status::Held);
        hold.status = Status::Confirmed;
        self.derived.live_holds -= 1;
        let hold = &state.holds[hold_counter as usize - 1];
        let (event, user) = (hold.event, hold.user);
        let (items, seats) = hold_lines(&state.lines, hold);
        let e = &mut state.events[event as usize];
        for &(section, qty) in items {
            let s = &mut e.sections[section as usize];
            s.held -= qty;
            s.sold += qty;
        }
        for &(section, seat) in seats {
            let s = &mut e.sections[section as usize];
            s.seats[seat as usize] = SeatState::sold(booking_counter.into());
            s.held -= 1;
            s.sold += 1;
        }
        e.bookings.push(booking_counter);
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
        let state = &mut self.state;
        let hold = &mut state.holds[counter as usize - 1];
        debug_assert_eq!(hold.status, Status::Held);
        hold.status = status;
        self.derived.live_holds -= 1;
        let hold = &state.holds[counter as usize - 1];
        let (items, seats) = hold_lines(&state.lines, hold);
        let e = &mut state.events[hold.event as usize];
        for &(section, qty) in items {
            e.sections[section as usize].held -= qty;
        }
        for &(section, seat) in seats {
            let s = &mut e.sections[section as usize];
            s.seats[seat as usize] = SeatState::FREE;
            s.held -= 1;
        }
        mark_seats(&mut self.derived, hold.event, seats, true);
        if e.max_per_user.is_some() {
            self.derived
                .uncount(hold.event, hold.user, tickets(items, seats));
        }
    }

    fn cancel(&mut self, booking_counter: u32, at_ms: u64) {
        let state = &mut self.state;
        let booking = &mut state.bookings[booking_counter as usize - 1];
        debug_assert!(!booking.is_cancelled());
        booking.cancelled = true;
        state.cancelled_at.insert(booking_counter, at_ms);
        let hold = &state.holds[booking.hold as usize - 1];
        let (items, seats) = hold_lines(&state.lines, hold);
        let e = &mut state.events[hold.event as usize];
        for &(section, qty) in items {
            e.sections[section as usize].sold -= qty;
        }
        for &(section, seat) in seats {
            let s = &mut e.sections[section as usize];
            s.seats[seat as usize] = SeatState::FREE;
            s.sold -= 1;
        }
        mark_seats(&mut self.derived, hold.event, seats, true);
        if e.max_per_user.is_some() {
            self.derived
                .uncount(hold.event, hold.user, tickets(items, seats));
        }
    }

    fn remember(&mut self, tag: &IdemTag, at_ms: u64, outcome: IdemOutcome) {
        let key = (tag.scope.clone(), tag.key.clone());
        let entry = IdemEntry {
            fingerprint: tag.fingerprint,
            at_ms,
            outcome,
        };
        if self.state.idem.insert(key, entry).is_none() {
            self.state
                .idem_order
                .push_back((at_ms, tag.scope.clone(), tag.key.clone()));
        }
    }

    /// Drops keys older than the retention, and the oldest beyond the count limit.
    fn forget_old_keys(&mut self, now_ms: u64) {
        while let Some((at_ms, _, _)) = self.state.idem_order.front() {
            let expired = at_ms + IDEMPOTENCY_RETENTION_MS <= now_ms;
            if !expired && self.state.idem_order.len() <= IDEMPOTENCY_ENTRIES_MAX {
                break;
            }
            let (_, scope, key) = self.state.idem_order.pop_front().expect("front exists");
            self.state.idem.remove(&(scope, key));
        }
    }

    pub(crate) fn idem_scope(actor: &crate::command::Actor) -> IdemScope {
        match actor {
            crate::command::Actor::Admin => IdemScope::Admin,
            crate::command::Actor::User(u) => IdemScope::User(u.clone()),
        }
    }

    /// Expiry decisions for up to `max` holds whose `expires_at <= now`, earliest first,
    /// one [`Decision`] per hold, from the ordered expiry index. An expiry whose tickets
    /// go to a waiting list ([`Decision::Cascaded`]) ends the list (it is decided on the
    /// state before this list): apply the list, then ask again until it is empty.
    pub fn decide_expiry(&self, now_ms: u64, max: usize) -> Vec<Decision> {
        debug_assert!(
            now_ms >= self.state.now_ms,
            "time went back: {now_ms} < {}",
            self.state.now_ms
        );
        let at_ms = now_ms.max(self.state.now_ms);
        let mut out = Vec::new();
        for (_, counter) in self
            .derived
            .expiry
            .earliest(now_ms, max, |e| !self.state.is_current(e))
        {
            let base = Decision::HoldExpired(HoldExpired {
                at_ms,
                hold: HoldId::new(self.state.shard, counter.into()),
            });
            let decision = self.with_cascade(base, counter, at_ms);
            if matches!(decision, Decision::Cascaded(_)) {
                // A cascade reads the state the earlier expiries leave: it is decided
                // alone, first in its own list; the caller asks again for the rest.
                if out.is_empty() {
                    out.push(decision);
                }
                break;
            }
            out.push(decision);
        }
        out
    }

    /// When the earliest live hold expires, if any.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.derived.expiry.first().map(|(at, _)| at)
    }

    /// The whole state, versioned and deterministic: equal states give equal bytes.
    /// A shard that never used a waiting list or an offer TTL writes format version 1
    /// (the state alone); otherwise version 2 (the state, then the waiting lists).
    pub fn snapshot(&self) -> Vec<u8> {
        if self.wait == Waitlists::default() {
            let mut buf = vec![codec::SNAPSHOT_VERSION_1];
            codec::encode_into(&self.state, &mut buf);
            return buf;
        }
        let mut buf = vec![codec::SNAPSHOT_VERSION];
        codec::encode_into(&(&self.state, &self.wait), &mut buf);
        buf
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes (either version).
    pub fn restore(bytes: &[u8]) -> Result<Self, CodecError> {
        match bytes.split_first() {
            Some((&codec::SNAPSHOT_VERSION_1, rest)) => {
                let state: State = codec::decode_all(rest)?;
                let wait = Waitlists::default();
                let derived = Derived::rebuild(&state, &wait);
                Ok(Engine {
                    state,
                    wait,
                    derived,
                })
            }
            Some((&codec::SNAPSHOT_VERSION, rest)) => {
                let (state, wait): (State, Waitlists) = codec::decode_all(rest)?;
                let derived = Derived::rebuild(&state, &wait);
                Ok(Engine {
                    state,
                    wait,
                    derived,
                })
            }
            Some((v, _)) => Err(CodecError(format!(
                "snapshot format version {v} is unknown"
            ))),
            None => Err(CodecError("empty snapshot".into())),
        }
    }
}

impl Engine {
    fn join(
        &mut self,
        entry: EntryId,
        event: u32,
        section: u16,
        user: &UserRef,
        qty: u32,
        at_ms: u64,
    ) {
        let counter = counter32(entry.counter());
        assert_eq!(
            counter as usize,
            self.wait.entries.len() + 1,
            "entries are applied in id order"
        );
        let user = self.intern(user);
        self.wait.entries.push(Entry {
            created_at_ms: at_ms,
            event,
            user,
            qty,
            hold: 0,
            section,
            status: EntryStatus::Waiting,
        });
        self.wait
            .queues
            .entry((event, section))
            .or_default()
            .push_back(counter);
        self.derived.live_entry.insert((event, user), counter);
        *self.derived.live_per_event.entry(event).or_default() += 1;
    }

    /// Takes a waiting entry out of its queue.
    fn dequeue(&mut self, counter: u32) {
        let entry = &self.wait.entries[counter as usize - 1];
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
        let entry = &mut self.wait.entries[counter as usize - 1];
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
        match self.wait.entries[counter as usize - 1].status {
            EntryStatus::Waiting => self.dequeue(counter),
            EntryStatus::Offered => {
                let hold = self.wait.entries[counter as usize - 1].hold;
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
                } => {
                    let s = &mut self.state.events[event as usize].sections[*section as usize];
                    let pool = self.wait.set_aside.entry((event, *section)).or_default();
                    s.held += qty + seats.len() as u32;
                    pool.count += qty + seats.len() as u32;
                    for &seat in seats {
                        debug_assert!(s.seats[seat as usize].is_free());
                        s.seats[seat as usize] = SeatState::SET_ASIDE;
                        pool.seats.insert(seat);
                    }
                    if !seats.is_empty() {
                        self.derived
                            .summary(event, *section)
                            .set(seats.iter().copied(), false);
                    }
                }
                WaitStep::BackOnSale {
                    section,
                    qty,
                    seats,
                } => {
                    let s = &mut self.state.events[event as usize].sections[*section as usize];
                    let key = (event, *section);
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
                            .summary(event, *section)
                            .set(seats.iter().copied(), true);
                    }
                }
                WaitStep::PassedOver { entry } => {
                    let counter = counter32(entry.counter());
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
                    let counter = counter32(entry.counter());
                    // The offer takes set-aside tickets first (they leave the pool), then
                    // free ones; an ordinary hold takes them all.
                    let e = &mut self.state.events[event as usize];
                    let pooled = !self.wait.set_aside.is_empty();
                    for &(section, qty) in lines.items.iter().filter(|_| pooled) {
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
                    for &(section, seat) in &lines.seats {
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
                    let user = UserRef::Known(self.wait.entries[counter as usize - 1].user);
                    let hold_counter = self.place(
                        *hold,
                        event,
                        &user,
                        lines,
                        *total_cents,
                        at_ms,
                        *expires_at_ms,
                    );
                    self.dequeue(counter);
                    let e = &mut self.wait.entries[counter as usize - 1];
                    e.status = EntryStatus::Offered;
                    e.hold = hold_counter;
                    self.derived.offer_of.insert(hold_counter, counter);
                }
            }
        }
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

/// A counter as stored: holds and bookings per shard are limited to `u32::MAX`
/// ([`crate::limits::HOLDS_PER_SHARD_MAX`]), which `decide` enforces.
pub(crate) fn counter32(counter: u64) -> u32 {
    u32::try_from(counter).expect("counters fit in u32 (decide enforces the limit)")
}
