//! `decide`: every rule, checked without changing anything. The order of the checks is
//! the documented precedence of rejections (see rejection.rs).

use std::collections::BTreeSet;

use crate::command::{Actor, BestAvailable, Command, Idempotency, NewEntry, NewEvent, NewHold};
use crate::decision::{
    BookingCancelled, Cascaded, Decision, EventCreated, EventCreatedWith, EventSpec, HoldConfirmed,
    HoldExtended, HoldPlaced, HoldReleased, IdemTag, Lines, Purchased, SectionSpec, UserRef,
    WaitlistJoined, WaitlistLeft,
};
use crate::engine::{Decided, Engine};
use crate::ids::{BookingId, HoldId};
use crate::limits::*;
use crate::rejection::{Rejection, ShardLimit};
use crate::state::{IdemOutcome, Status};
use crate::view::{EntryStatus, HoldStatus, Output};

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection::invalid(field, message)
}

/// `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ID_LEN_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `[A-Za-z0-9_.@+-]{1,128}`.
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= USER_ID_LEN_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@+-".contains(&b))
}

fn check_name(field: &str, name: &str) -> Result<(), Rejection> {
    if name.trim().is_empty() || name.len() > NAME_LEN_MAX {
        return Err(invalid(
            field,
            format!("1 to {NAME_LEN_MAX} bytes, not blank"),
        ));
    }
    Ok(())
}

fn check_idempotency(idem: &Option<Idempotency>) -> Result<(), Rejection> {
    if let Some(i) = idem {
        if i.key.is_empty() || i.key.len() > IDEMPOTENCY_KEY_LEN_MAX {
            return Err(invalid(
                "Idempotency-Key",
                format!("1 to {IDEMPOTENCY_KEY_LEN_MAX} bytes"),
            ));
        }
    }
    Ok(())
}

fn check_ttl(field: &str, ttl_ms: u64) -> Result<(), Rejection> {
    if !(HOLD_TTL_MS_MIN..=HOLD_TTL_MS_MAX).contains(&ttl_ms) {
        return Err(invalid(
            field,
            format!(
                "from {} to {} seconds",
                HOLD_TTL_MS_MIN / 1000,
                HOLD_TTL_MS_MAX / 1000
            ),
        ));
    }
    Ok(())
}

fn check_payment_ref(payment_ref: &Option<String>) -> Result<(), Rejection> {
    match payment_ref {
        Some(p) if p.is_empty() || p.len() > PAYMENT_REF_LEN_MAX => Err(invalid(
            "payment_ref",
            format!("1 to {PAYMENT_REF_LEN_MAX} bytes"),
        )),
        _ => Ok(()),
    }
}

fn tag(actor: &Actor, idem: &Option<Idempotency>) -> Option<Box<IdemTag>> {
    idem.as_ref().map(|i| {
        Box::new(IdemTag {
            scope: Engine::idem_scope(actor),
            key: i.key.clone(),
            fingerprint: i.fingerprint,
        })
    })
}

impl Engine {
    /// Checks every rule and returns what would change, or why not. Pure.
    pub fn decide(&self, command: &Command, now_ms: u64) -> Result<Decided, Rejection> {
        debug_assert!(
            now_ms >= self.now_ms(),
            "time went back: {now_ms} < {}",
            self.now_ms()
        );
        let now_ms = now_ms.max(self.now_ms());
        match command {
            Command::CreateEvent(new) => self.decide_event(new, now_ms, None),
            Command::CreateEventWith(new, options) => {
                self.decide_event(new, now_ms, options.offer_ttl_ms)
            }
            Command::JoinWaitlist(new) => self.decide_join(new, now_ms),
            Command::LeaveWaitlist {
                actor,
                entry_id,
                idempotency,
            } => {
                check_idempotency(idempotency)?;
                let entry = self.owned_entry(*entry_id, actor)?;
                if let Some(replay) = self.replay(actor, idempotency, now_ms)? {
                    return Ok(replay);
                }
                let counter = crate::engine::counter32(entry_id.counter());
                let view = self.entry_view(counter, now_ms);
                if !matches!(view.status, EntryStatus::Waiting | EntryStatus::Offered) {
                    return Err(Rejection::EntryNotActive {
                        status: view.status.as_str(),
                    });
                }
                let (returned, delta, leaving) = if entry.hold != 0 {
                    let (r, d) = self.returned_by(entry.hold);
                    (r, d, None)
                } else {
                    (Default::default(), None, Some(counter))
                };
                Ok(Decided::Change(Decision::WaitlistLeft(WaitlistLeft {
                    at_ms: now_ms,
                    entry: *entry_id,
                    steps: self.cascade(entry.event, &returned, leaving, delta, now_ms),
                    idem: tag(actor, idempotency),
                })))
            }
            Command::PlaceHold(new) => self.decide_hold(new, now_ms, false, None),
            Command::Purchase(new) => self.decide_hold(new, now_ms, true, None),
            Command::PlaceHoldBest(new, best) => self.decide_hold(new, now_ms, false, Some(best)),
            Command::PurchaseBest(new, best) => self.decide_hold(new, now_ms, true, Some(best)),
            Command::ConfirmHold {
                actor,
                hold_id,
                payment_ref,
                idempotency,
            } => {
                check_payment_ref(payment_ref)?;
                check_idempotency(idempotency)?;
                let hold = self.owned_hold(*hold_id, actor)?;
                if let Some(replay) = self.replay(actor, idempotency, now_ms)? {
                    return Ok(replay);
                }
                self.check_live(hold.status, hold.expires_at_ms(), now_ms)?;
                self.check_booking_room(payment_ref)?;
                Ok(Decided::Change(Decision::HoldConfirmed(HoldConfirmed {
                    at_ms: now_ms,
                    hold: *hold_id,
                    booking: self.next_booking_id(),
                    payment_ref: payment_ref.clone(),
                    idem: tag(actor, idempotency),
                })))
            }
            Command::ReleaseHold {
                actor,
                hold_id,
                idempotency,
            } => {
                check_idempotency(idempotency)?;
                let hold = self.owned_hold(*hold_id, actor)?;
                if let Some(replay) = self.replay(actor, idempotency, now_ms)? {
                    return Ok(replay);
                }
                self.check_live(hold.status, hold.expires_at_ms(), now_ms)?;
                let base = Decision::HoldReleased(HoldReleased {
                    at_ms: now_ms,
                    hold: *hold_id,
                    idem: tag(actor, idempotency),
                });
                let counter = crate::engine::counter32(hold_id.counter());
                Ok(Decided::Change(self.with_cascade(base, counter, now_ms)))
            }
            Command::CancelBooking {
                actor,
                booking_id,
                idempotency,
            } => {
                check_idempotency(idempotency)?;
                let booking = self.owned_booking(*booking_id, actor)?;
                if let Some(replay) = self.replay(actor, idempotency, now_ms)? {
                    return Ok(replay);
                }
                if booking.is_cancelled() {
                    return Err(Rejection::BookingNotActive);
                }
                let base = Decision::BookingCancelled(BookingCancelled {
                    at_ms: now_ms,
                    booking: *booking_id,
                    idem: tag(actor, idempotency),
                });
                Ok(Decided::Change(self.with_cascade(
                    base,
                    booking.hold,
                    now_ms,
                )))
            }
            Command::ExtendHold {
                actor,
                hold_id,
                ttl_ms,
                idempotency,
            } => {
                check_ttl("ttl_seconds", *ttl_ms)?;
                check_idempotency(idempotency)?;
                let hold = self.owned_hold(*hold_id, actor)?;
                if let Some(replay) = self.replay(actor, idempotency, now_ms)? {
                    return Ok(replay);
                }
                self.check_live(hold.status, hold.expires_at_ms(), now_ms)?;
                let latest_ms = hold.created_at_ms + HOLD_LIFETIME_MS_MAX;
                let expires_at_ms = now_ms + ttl_ms;
                if expires_at_ms > latest_ms {
                    return Err(Rejection::ExtensionLimit { latest_ms });
                }
                Ok(Decided::Change(Decision::HoldExtended(HoldExtended {
                    at_ms: now_ms,
                    hold: *hold_id,
                    expires_at_ms,
                    idem: tag(actor, idempotency),
                })))
            }
        }
    }

    /// Room for one more booking record and its payment reference.
    fn check_booking_room(&self, payment_ref: &Option<String>) -> Result<(), Rejection> {
        let payment_bytes =
            self.state.payment_refs.len() + payment_ref.as_ref().map_or(0, String::len);
        if self.state.bookings.len() as u64 >= BOOKINGS_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::Bookings));
        }
        if payment_bytes as u64 > PAYMENT_REF_BYTES_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::PaymentRefBytes));
        }
        Ok(())
    }

    fn check_live(&self, status: Status, expires_at_ms: u64, now_ms: u64) -> Result<(), Rejection> {
        match status {
            Status::Held if now_ms >= expires_at_ms => Err(Rejection::HoldExpired),
            Status::Held => Ok(()),
            Status::Expired => Err(Rejection::HoldExpired),
            Status::Confirmed => Err(Rejection::HoldNotActive {
                status: "confirmed",
            }),
            Status::Released => Err(Rejection::HoldNotActive { status: "released" }),
        }
    }

    pub(crate) fn owned_hold(
        &self,
        id: HoldId,
        actor: &Actor,
    ) -> Result<&crate::state::Hold, Rejection> {
        let hold = self
            .hold_at(id)
            .ok_or(Rejection::NotFound { what: "hold" })?;
        match actor {
            Actor::User(u) if self.state.users[hold.user as usize] != *u => {
                Err(Rejection::NotFound { what: "hold" })
            }
            _ => Ok(hold),
        }
    }

    pub(crate) fn owned_booking(
        &self,
        id: BookingId,
        actor: &Actor,
    ) -> Result<&crate::state::Booking, Rejection> {
        let booking = self
            .booking_at(id)
            .ok_or(Rejection::NotFound { what: "booking" })?;
        let hold = &self.state.holds[booking.hold as usize - 1];
        match actor {
            Actor::User(u) if self.state.users[hold.user as usize] != *u => {
                Err(Rejection::NotFound { what: "booking" })
            }
            _ => Ok(booking),
        }
    }

    /// The first answer of an idempotent retry, or reuse of its key with another request.
    fn replay(
        &self,
        actor: &Actor,
        idem: &Option<Idempotency>,
        now_ms: u64,
    ) -> Result<Option<Decided>, Rejection> {
        let Some(idem) = idem else { return Ok(None) };
        let scope = Engine::idem_scope(actor);
        let Some(entry) = self.state.idem.get(&(scope, idem.key.clone())) else {
            return Ok(None);
        };
        if entry.at_ms + IDEMPOTENCY_RETENTION_MS <= now_ms {
            return Ok(None);
        }
        if entry.fingerprint != idem.fingerprint {
            return Err(Rejection::IdempotencyKeyReused);
        }
        let shard = self.shard();
        let output = match entry.outcome {
            IdemOutcome::EventCreated(i) => Output::Event(self.event_view(i)),
            IdemOutcome::HoldPlaced(h) | IdemOutcome::Extended(h) => {
                Output::Hold(self.hold_view_as(h, HoldStatus::Held))
            }
            IdemOutcome::Released(h) => Output::Hold(self.hold_view_as(h, HoldStatus::Released)),
            IdemOutcome::Purchased(b) | IdemOutcome::Confirmed(b) => {
                let mut view = self.booking_view(BookingId::new(shard, b));
                view.status = crate::view::BookingStatus::Confirmed;
                view.cancelled_at_ms = None;
                Output::Booking(view)
            }
            IdemOutcome::Cancelled(b) => {
                Output::Booking(self.booking_view(BookingId::new(shard, b)))
            }
            IdemOutcome::Joined(c) | IdemOutcome::Left(c) => {
                Output::Entry(self.entry_view(crate::engine::counter32(c), now_ms))
            }
        };
        Ok(Some(Decided::Remembered(output)))
    }

    fn decide_event(
        &self,
        new: &NewEvent,
        now_ms: u64,
        offer_ttl_ms: Option<u64>,
    ) -> Result<Decided, Rejection> {
        if !is_valid_id(&new.id) {
            return Err(invalid(
                "id",
                format!("must match [A-Za-z0-9_-]{{1,{ID_LEN_MAX}}}"),
            ));
        }
        check_name("name", &new.name)?;
        if let Some(m) = new.max_per_user {
            if !(1..=MAX_PER_USER_MAX).contains(&m) {
                return Err(invalid(
                    "max_per_user",
                    format!("from 1 to {MAX_PER_USER_MAX}"),
                ));
            }
        }
        let hold_ttl_ms = new.hold_ttl_ms.unwrap_or(HOLD_TTL_MS_DEFAULT);
        check_ttl("hold_ttl_seconds", hold_ttl_ms)?;
        if let Some(ttl) = offer_ttl_ms {
            if !(OFFER_TTL_MS_MIN..=OFFER_TTL_MS_MAX).contains(&ttl) {
                return Err(invalid(
                    "offer_ttl_seconds",
                    format!(
                        "from {} to {} seconds",
                        OFFER_TTL_MS_MIN / 1000,
                        OFFER_TTL_MS_MAX / 1000
                    ),
                ));
            }
        }
        if new.sections.is_empty() || new.sections.len() > SECTIONS_PER_EVENT_MAX {
            return Err(invalid(
                "sections",
                format!("1 to {SECTIONS_PER_EVENT_MAX} sections"),
            ));
        }
        check_idempotency(&new.idempotency)?;
        let mut ids = BTreeSet::new();
        let mut labels = BTreeSet::new();
        let mut seats_in_event: u32 = 0;
        let mut sections = Vec::with_capacity(new.sections.len());
        for (i, s) in new.sections.iter().enumerate() {
            let id = s.id.clone().unwrap_or_else(|| format!("s{}", i + 1));
            if !is_valid_id(&id) {
                return Err(invalid(
                    format!("sections[{i}].id"),
                    format!("must match [A-Za-z0-9_-]{{1,{ID_LEN_MAX}}}"),
                ));
            }
            if !ids.insert(id.clone()) {
                return Err(invalid(
                    format!("sections[{i}].id"),
                    format!("{id} is used by another section"),
                ));
            }
            check_name(&format!("sections[{i}].name"), &s.name)?;
            if s.price_cents > PRICE_CENTS_MAX {
                return Err(invalid(
                    format!("sections[{i}].price_cents"),
                    format!("at most {PRICE_CENTS_MAX}"),
                ));
            }
            let (rows, capacity) = match &s.layout {
                crate::command::Layout::General { capacity } => {
                    if !(1..=GA_CAPACITY_MAX).contains(capacity) {
                        return Err(invalid(
                            format!("sections[{i}].capacity"),
                            format!("from 1 to {GA_CAPACITY_MAX}"),
                        ));
                    }
                    (None, *capacity)
                }
                crate::command::Layout::Seated { rows } => {
                    let field = format!("sections[{i}].seats.rows");
                    if rows.is_empty() || rows.len() > ROWS_PER_SECTION_MAX {
                        return Err(invalid(field, format!("1 to {ROWS_PER_SECTION_MAX} rows")));
                    }
                    let mut seats: u32 = 0;
                    let mut out = Vec::with_capacity(rows.len());
                    for (j, row) in rows.iter().enumerate() {
                        let label_ok = !row.label.is_empty()
                            && row.label.len() <= ROW_LABEL_LEN_MAX
                            && row.label.bytes().all(|b| b.is_ascii_alphanumeric());
                        if !label_ok {
                            return Err(invalid(
                                format!("{field}[{j}].label"),
                                format!("must match [A-Za-z0-9]{{1,{ROW_LABEL_LEN_MAX}}}"),
                            ));
                        }
                        if !labels.insert(row.label.clone()) {
                            return Err(invalid(
                                format!("{field}[{j}].label"),
                                format!("row {} appears twice in the event", row.label),
                            ));
                        }
                        if !(1..=SEATS_PER_ROW_MAX).contains(&row.count) {
                            return Err(invalid(
                                format!("{field}[{j}].count"),
                                format!("from 1 to {SEATS_PER_ROW_MAX}"),
                            ));
                        }
                        seats += row.count;
                        out.push((row.label.clone(), row.count));
                    }
                    if seats > SEATS_PER_SECTION_MAX {
                        return Err(invalid(
                            field,
                            format!("at most {SEATS_PER_SECTION_MAX} seats per section"),
                        ));
                    }
                    seats_in_event += seats;
                    if seats_in_event > SEATS_PER_EVENT_MAX {
                        return Err(invalid(
                            "sections",
                            format!("at most {SEATS_PER_EVENT_MAX} seats per event"),
                        ));
                    }
                    (Some(out), seats)
                }
            };
            sections.push(SectionSpec {
                id,
                name: s.name.clone(),
                price_cents: s.price_cents,
                rows,
                capacity,
            });
        }
        let actor = Actor::Admin;
        if let Some(replay) = self.replay(&actor, &new.idempotency, now_ms)? {
            return Ok(replay);
        }
        if self.state.event_index.contains_key(&new.id) {
            return Err(Rejection::EventExists);
        }
        if self.state.events.len() >= EVENTS_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::Events));
        }
        let event = Box::new(EventSpec {
            id: new.id.clone(),
            name: new.name.clone(),
            starts_at_ms: new.starts_at_ms,
            max_per_user: new.max_per_user,
            hold_ttl_ms,
            sections,
        });
        let idem = tag(&actor, &new.idempotency);
        Ok(Decided::Change(match offer_ttl_ms {
            None => Decision::EventCreated(EventCreated {
                at_ms: now_ms,
                event,
                idem,
            }),
            Some(offer_ttl_ms) => Decision::EventCreatedWith(EventCreatedWith {
                at_ms: now_ms,
                event,
                offer_ttl_ms,
                idem,
            }),
        }))
    }

    fn decide_hold(
        &self,
        new: &NewHold,
        now_ms: u64,
        purchase: bool,
        best: Option<&BestAvailable>,
    ) -> Result<Decided, Rejection> {
        if !is_valid_user_id(&new.user_id) {
            return Err(invalid(
                "user_id",
                format!("must match [A-Za-z0-9_.@+-]{{1,{USER_ID_LEN_MAX}}}"),
            ));
        }
        if new.items.is_empty() && new.seats.is_empty() && best.is_none() {
            return Err(invalid("items", "give items or seats to hold"));
        }
        if let Some(best) = best {
            if !new.seats.is_empty() {
                return Err(invalid(
                    "best_available",
                    "give named seats or best_available, not both",
                ));
            }
            if !(1..=BEST_AVAILABLE_QTY_MAX).contains(&best.qty) {
                return Err(invalid(
                    "best_available.qty",
                    format!("from 1 to {BEST_AVAILABLE_QTY_MAX}"),
                ));
            }
        }
        if new.items.len() > ITEMS_PER_HOLD_MAX {
            return Err(invalid(
                "items",
                format!("at most {ITEMS_PER_HOLD_MAX} items"),
            ));
        }
        if new.seats.len() > SEATS_PER_HOLD_MAX {
            return Err(invalid(
                "seats",
                format!("at most {SEATS_PER_HOLD_MAX} seats"),
            ));
        }
        let mut tickets: u64 = new.seats.len() as u64 + u64::from(best.map_or(0, |b| b.qty));
        for (i, item) in new.items.iter().enumerate() {
            if item.qty == 0 {
                return Err(invalid(format!("items[{i}].qty"), "at least 1"));
            }
            tickets += u64::from(item.qty);
        }
        if tickets > u64::from(TICKETS_PER_HOLD_MAX) {
            return Err(invalid(
                "items",
                format!("at most {TICKETS_PER_HOLD_MAX} tickets per hold"),
            ));
        }
        if let Some(ttl) = new.ttl_ms {
            if !purchase {
                check_ttl("ttl_seconds", ttl)?;
            }
        }
        if purchase {
            check_payment_ref(&new.payment_ref)?;
        }
        check_idempotency(&new.idempotency)?;
        let &index = self
            .state
            .event_index
            .get(&new.event_id)
            .ok_or(Rejection::NotFound { what: "event" })?;
        let event = &self.state.events[index as usize];
        let mut lines = Lines::default();
        let mut total_cents: u64 = 0;
        for (i, item) in new.items.iter().enumerate() {
            let field = || format!("items[{i}].section_id");
            let s = event
                .sections
                .iter()
                .position(|s| s.id == item.section_id)
                .ok_or_else(|| invalid(field(), "no such section in this event"))?;
            if event.sections[s].is_seated() {
                return Err(invalid(
                    field(),
                    "this section has assigned seats: name them in seats",
                ));
            }
            if lines.items.iter().any(|&(x, _)| x as usize == s) {
                return Err(invalid(field(), "the same section appears twice"));
            }
            lines.items.push((s as u16, item.qty));
            total_cents += event.sections[s].price_cents * u64::from(item.qty);
        }
        for (i, seat) in new.seats.iter().enumerate() {
            let found = event.find_seat(seat).ok_or_else(|| {
                invalid(
                    format!("seats[{i}]"),
                    format!("no seat {seat:?} in this event"),
                )
            })?;
            if lines.seats.contains(&found) {
                return Err(invalid(
                    format!("seats[{i}]"),
                    format!("seat {seat} appears twice"),
                ));
            }
            lines.seats.push(found);
            total_cents += event.sections[found.0 as usize].price_cents;
        }
        let best_sections = best.map(|b| self.best_sections(event, b)).transpose()?;
        if let Some(replay) = self.replay(&new.actor, &new.idempotency, now_ms)? {
            return Ok(replay);
        }
        let user = self.user_index(&new.user_id);
        if let Some(max) = event.max_per_user {
            let current = user
                .and_then(|u| self.derived.per_user.get(&(index, u)).copied())
                .unwrap_or(0);
            if u64::from(current) + tickets > u64::from(max) {
                return Err(Rejection::LimitExceeded {
                    max_per_user: max,
                    current,
                });
            }
        }
        for (i, &(section, seat)) in lines.seats.iter().enumerate() {
            if !event.sections[section as usize].seats[seat as usize].is_free() {
                return Err(Rejection::SeatTaken {
                    seat: new.seats[i].clone(),
                });
            }
        }
        for &(section, qty) in &lines.items {
            let s = &event.sections[section as usize];
            if s.available() < qty {
                return Err(Rejection::SoldOut {
                    section_id: s.id.clone(),
                    available: s.available(),
                });
            }
        }
        if let (Some(best), Some(sections)) = (best, best_sections) {
            let (section, seats) = self.pick_best(index, &sections, best)?;
            lines
                .seats
                .extend(seats.into_iter().map(|seat| (section, seat)));
            total_cents += event.sections[section as usize].price_cents * u64::from(best.qty);
        }
        if self.state.holds.len() as u64 >= HOLDS_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::Holds));
        }
        if purchase {
            self.check_booking_room(&new.payment_ref)?;
        }
        let idem = tag(&new.actor, &new.idempotency);
        let user = match user {
            Some(u) => UserRef::Known(u),
            None => UserRef::New(new.user_id.clone()),
        };
        if purchase {
            return Ok(Decided::Change(Decision::Purchased(Purchased {
                at_ms: now_ms,
                hold: self.next_hold_id(),
                booking: self.next_booking_id(),
                event: index,
                user,
                lines,
                total_cents,
                payment_ref: new.payment_ref.clone(),
                idem,
            })));
        }
        if self.derived.live_holds >= LIVE_HOLDS_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::LiveHolds));
        }
        let ttl_ms = new.ttl_ms.unwrap_or(event.hold_ttl_ms);
        Ok(Decided::Change(Decision::HoldPlaced(HoldPlaced {
            at_ms: now_ms,
            hold: self.next_hold_id(),
            event: index,
            user,
            lines,
            total_cents,
            expires_at_ms: now_ms + ttl_ms,
            idem,
        })))
    }
}

impl Engine {
    /// The seated sections a best-available request may use, in order.
    fn best_sections(
        &self,
        event: &crate::state::Event,
        best: &BestAvailable,
    ) -> Result<Vec<u16>, Rejection> {
        match &best.section_id {
            Some(id) => {
                let s = event
                    .sections
                    .iter()
                    .position(|s| s.id == *id)
                    .ok_or_else(|| {
                        invalid("best_available.section_id", "no such section in this event")
                    })?;
                if !event.sections[s].is_seated() {
                    return Err(invalid(
                        "best_available.section_id",
                        "this section has no assigned seats: hold it with items",
                    ));
                }
                Ok(vec![s as u16])
            }
            None => {
                let seated: Vec<u16> = (0..event.sections.len() as u16)
                    .filter(|&s| event.sections[s as usize].is_seated())
                    .collect();
                if seated.is_empty() {
                    return Err(invalid(
                        "best_available",
                        "this event has no sections with assigned seats",
                    ));
                }
                Ok(seated)
            }
        }
    }

    /// Best available over `sections` in order: the first section where the steps find
    /// seats gives them. Else `no_adjacent_seats` when one of them has `qty` free seats,
    /// `sold_out` when none has.
    fn pick_best(
        &self,
        event: u32,
        sections: &[u16],
        best: &BestAvailable,
    ) -> Result<(u16, Vec<u32>), Rejection> {
        for &s in sections {
            let summary = self.derived.summaries[event as usize][s as usize]
                .as_ref()
                .expect("a seated section has a summary");
            if let Some(seats) = summary.pick(best.qty, best.allow_split) {
                return Ok((s, seats));
            }
        }
        let e = &self.state.events[event as usize];
        let (section, available) = sections
            .iter()
            .map(|&s| (&e.sections[s as usize], e.sections[s as usize].available()))
            .fold(
                None,
                |acc: Option<(&crate::state::Section, u32)>, (s, a)| match acc {
                    Some((_, best_a)) if best_a >= a => acc,
                    _ => Some((s, a)),
                },
            )
            .expect("at least one section");
        if available >= best.qty {
            Err(Rejection::NoAdjacentSeats {
                section_id: section.id.clone(),
                available,
            })
        } else {
            Err(Rejection::SoldOut {
                section_id: section.id.clone(),
                available,
            })
        }
    }
}

impl Engine {
    /// What ending hold `counter` gives back, by section, and the tickets it takes off
    /// its user's count (capped events only).
    pub(crate) fn returned_by(
        &self,
        counter: u32,
    ) -> (crate::waitlist::ReturnedBy, Option<(u32, u32)>) {
        let hold = &self.state.holds[counter as usize - 1];
        let (items, seats) = self.state.lines_of(hold);
        let mut returned = crate::waitlist::ReturnedBy::new();
        fn slot(returned: &mut crate::waitlist::ReturnedBy, s: u16) -> usize {
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
        let event = self.state.holds[counter as usize - 1].event;
        if !self.wait.touches(event) {
            return base;
        }
        let (returned, delta) = self.returned_by(counter);
        let steps = self.cascade_touched(event, &returned, None, delta, now_ms);
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

    fn decide_join(&self, new: &NewEntry, now_ms: u64) -> Result<Decided, Rejection> {
        if !is_valid_user_id(&new.user_id) {
            return Err(invalid(
                "user_id",
                format!("must match [A-Za-z0-9_.@+-]{{1,{USER_ID_LEN_MAX}}}"),
            ));
        }
        if new.qty == 0 {
            return Err(invalid("qty", "at least 1"));
        }
        check_idempotency(&new.idempotency)?;
        let &index = self
            .state
            .event_index
            .get(&new.event_id)
            .ok_or(Rejection::NotFound { what: "event" })?;
        let event = &self.state.events[index as usize];
        let s = event
            .sections
            .iter()
            .position(|s| s.id == new.section_id)
            .ok_or_else(|| invalid("section_id", "no such section in this event"))?;
        let section = &event.sections[s];
        let most = if section.is_seated() {
            SEATS_PER_HOLD_MAX as u32
        } else {
            TICKETS_PER_HOLD_MAX
        };
        if new.qty > most {
            return Err(invalid("qty", format!("at most {most} in this section")));
        }
        if let Some(max) = event.max_per_user {
            if new.qty > max {
                return Err(invalid(
                    "qty",
                    format!("at most the event's max_per_user, {max}"),
                ));
            }
        }
        if let Some(replay) = self.replay(&new.actor, &new.idempotency, now_ms)? {
            return Ok(replay);
        }
        let user = self.user_index(&new.user_id);
        if let Some(&c) = user.and_then(|u| self.derived.live_entry.get(&(index, u))) {
            return Err(Rejection::AlreadyWaiting {
                entry_id: self.entry_id(c),
            });
        }
        if section.available() >= new.qty {
            return Err(Rejection::TicketsAvailable {
                available: section.available(),
            });
        }
        if self.wait.entries.len() >= WAITLIST_ENTRIES_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::WaitlistEntries));
        }
        let live = self
            .derived
            .live_per_event
            .get(&index)
            .copied()
            .unwrap_or(0);
        if live as usize >= WAITLIST_LIVE_PER_EVENT_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::WaitlistPerEvent));
        }
        Ok(Decided::Change(Decision::WaitlistJoined(WaitlistJoined {
            at_ms: now_ms,
            entry: self.entry_id(self.wait.entries.len() as u32 + 1),
            event: index,
            section: s as u16,
            user: match user {
                Some(u) => UserRef::Known(u),
                None => UserRef::New(new.user_id.clone()),
            },
            qty: new.qty,
            idem: tag(&new.actor, &new.idempotency),
        })))
    }
}
