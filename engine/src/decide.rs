//! `decide`: every rule, checked without changing anything. The order of the checks is
//! the documented precedence of rejections (see rejection.rs).

use std::collections::BTreeSet;

use crate::command::{
    Actor, BestAvailable, Command, Idempotency, Layout, NewEntry, NewEvent, NewHold, NewRow,
};
use crate::decision::{
    BookingCancelled, Decision, EventCreated, EventCreatedWith, EventSpec, HoldConfirmed,
    HoldExpired, HoldExtended, HoldPlaced, HoldReleased, IdemScope, IdemTag, Lines, Purchased,
    Refusal, Refused, SectionSpec, UserRef, WaitlistJoined, WaitlistLeft,
};
use crate::engine::Engine;
use crate::ids::{BookingId, EntryId, HoldId};
use crate::limits::*;
use crate::rejection::{Rejection, ShardLimit};
use crate::state::{Event, IdemOutcome, Status};
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

/// 1 to [`USER_ID_LEN_MAX`] characters, none a control character ([`USER_ID_RULE`]): a
/// JWT `sub` from any issuer (RFC 7519 makes it any string or URI).
pub fn is_valid_user_id(id: &str) -> bool {
    !id.is_empty()
        // Bytes first: a long string is refused without counting its characters.
        && id.len() <= USER_ID_LEN_MAX * 4
        && !id.chars().any(char::is_control)
        && id.chars().count() <= USER_ID_LEN_MAX
}

fn check_name(field: &str, name: &str) -> Result<(), Rejection> {
    // Characters, as JSON Schema's `maxLength` counts them (the API document says 200).
    if name.trim().is_empty() || name.chars().count() > NAME_LEN_MAX {
        return Err(invalid(
            field,
            format!("1 to {NAME_LEN_MAX} characters, not blank"),
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

/// Whose keys an actor's are.
pub(crate) fn idem_scope(actor: &Actor) -> IdemScope {
    match actor {
        Actor::Admin => IdemScope::Admin,
        Actor::User(u) => IdemScope::User(u.clone()),
    }
}

/// What [`Engine::execute`] did with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The answer: what was made, or why not.
    pub output: Result<Output, Rejection>,
    /// The decision applied and encoded (a refusal remembered with its key is one,
    /// [`Decision::Refused`]), or `None` when nothing changed and nothing is logged: a
    /// remembered answer, or a refusal no key remembers.
    pub decision: Option<Decision>,
}

/// Who sends `command` and its idempotency key, if it has one.
fn keyed(command: &Command) -> Option<(&Actor, &Option<Idempotency>)> {
    let (actor, idem) = match command {
        Command::CreateEvent(new) | Command::CreateEventWith(new, _) => {
            (&Actor::Admin, &new.idempotency)
        }
        Command::PlaceHold(new)
        | Command::Purchase(new)
        | Command::PlaceHoldBest(new, _)
        | Command::PurchaseBest(new, _) => (&new.actor, &new.idempotency),
        Command::JoinWaitlist(new) => (&new.actor, &new.idempotency),
        Command::ConfirmHold {
            actor, idempotency, ..
        }
        | Command::ReleaseHold {
            actor, idempotency, ..
        }
        | Command::CancelBooking {
            actor, idempotency, ..
        }
        | Command::ExtendHold {
            actor, idempotency, ..
        }
        | Command::LeaveWaitlist {
            actor, idempotency, ..
        } => (actor, idempotency),
    };
    idem.is_some().then_some((actor, idem))
}

fn tag(actor: &Actor, idem: &Option<Idempotency>) -> Option<Box<IdemTag>> {
    idem.as_ref().map(|i| {
        Box::new(IdemTag {
            scope: idem_scope(actor),
            key: i.key.clone(),
            fingerprint: i.fingerprint,
        })
    })
}

/// What `decide` concluded for an accepted command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// A change: log it, apply it, answer with [`Engine::output`].
    Change(Decision),
    /// An idempotent retry of an earlier success: its remembered answer. Answer this,
    /// log nothing (the name is not about log replay, which only applies decisions).
    Remembered(Output),
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
        let asked = |actor, idempotency| Asked {
            actor,
            idempotency,
            now_ms,
        };
        let decided = match command {
            Command::CreateEvent(new) => self.decide_event(new, now_ms, None),
            Command::CreateEventWith(new, options) => {
                self.decide_event(new, now_ms, options.offer_ttl_ms)
            }
            Command::JoinWaitlist(new) => self.decide_join(new, now_ms),
            Command::LeaveWaitlist {
                actor,
                entry_id,
                idempotency,
            } => self.decide_leave(&asked(actor, idempotency), *entry_id),
            Command::PlaceHold(new) => self.decide_place(new, now_ms, None),
            Command::Purchase(new) => self.decide_purchase(new, now_ms, None),
            Command::PlaceHoldBest(new, best) => self.decide_place(new, now_ms, Some(best)),
            Command::PurchaseBest(new, best) => self.decide_purchase(new, now_ms, Some(best)),
            Command::ConfirmHold {
                actor,
                hold_id,
                payment_ref,
                idempotency,
            } => self.decide_confirm(&asked(actor, idempotency), *hold_id, payment_ref),
            Command::ReleaseHold {
                actor,
                hold_id,
                idempotency,
            } => self.decide_release(&asked(actor, idempotency), *hold_id),
            Command::CancelBooking {
                actor,
                booking_id,
                idempotency,
            } => self.decide_cancel(&asked(actor, idempotency), *booking_id),
            Command::ExtendHold {
                actor,
                hold_id,
                ttl_ms,
                idempotency,
            } => self.decide_extend(&asked(actor, idempotency), *hold_id, *ttl_ms),
        };
        match decided {
            Ok(decided) => Ok(decided),
            Err(Stop::Remembered(output)) => Ok(Decided::Remembered(*output)),
            Err(Stop::Replayed(rejection)) => Err(rejection),
            Err(Stop::Rejected(rejection)) => match keyed(command)
                .and_then(|(actor, idem)| Some((actor, idem, Refusal::of(&rejection)?)))
            {
                // Every rule that gives such a refusal runs after the key was looked up
                // (`remembered`), so the key is new: remember the refusal with it.
                Some((actor, idem, refusal)) => Ok(Decided::Change(Decision::Refused(Refused {
                    at_ms: now_ms,
                    idem: tag(actor, idem).expect("a key"),
                    refusal,
                }))),
                None => Err(rejection),
            },
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

    /// Expires the holds due at `now_ms`, at most [`EXPIRE_BATCH_MAX`] of them, earliest
    /// first: decides and applies each expiry and hands it, applied, to `each` (which logs
    /// it). An expiry that feeds a waiting list comes alone from [`Engine::decide_expiry`],
    /// so this asks again until none is due. What a shard does before each batch, so that
    /// the returned inventory is back before the batch decides. Returns how many expired.
    pub fn expire_due(&mut self, now_ms: u64, mut each: impl FnMut(&Decision)) -> usize {
        let mut expired = 0;
        while expired < EXPIRE_BATCH_MAX {
            let due = self.decide_expiry(now_ms, EXPIRE_BATCH_MAX - expired);
            if due.is_empty() {
                break;
            }
            for decision in due {
                self.apply(&decision);
                each(&decision);
                expired += 1;
            }
        }
        expired
    }

    /// Decides `command` at `now_ms`, applies the decision and appends its encoding to
    /// `record` (untouched when nothing changes): what a shard does with each command,
    /// and what tests and benchmarks call instead of repeating it.
    /// A refusal remembered with its key ([`Decision::Refused`]) is a decision: it is
    /// logged like any other, and answered with its rejection.
    pub fn execute(&mut self, command: &Command, now_ms: u64, record: &mut Vec<u8>) -> Executed {
        match self.decide(command, now_ms) {
            Ok(Decided::Change(decision)) => {
                self.apply(&decision);
                decision.encode(record);
                Executed {
                    output: self.output(&decision, now_ms),
                    decision: Some(decision),
                }
            }
            Ok(Decided::Remembered(output)) => Executed {
                output: Ok(output),
                decision: None,
            },
            Err(rejection) => Executed {
                output: Err(rejection),
                decision: None,
            },
        }
    }

    fn decide_leave(&self, asked: &Asked<'_>, entry_id: EntryId) -> Result<Decided, Stop> {
        let entry = self.owned(asked, |e| e.owned_entry(entry_id, asked.actor))?;
        let counter = entry_id.counter32();
        let view = self.entry_view(counter, asked.now_ms);
        if !matches!(view.status, EntryStatus::Waiting | EntryStatus::Offered) {
            return Err(Rejection::EntryNotActive {
                status: view.status.as_str(),
            }
            .into());
        }
        let (returned, delta, leaving) = if entry.hold != 0 {
            let (r, d) = self.returned_by(entry.hold);
            (r, d, None)
        } else {
            (Default::default(), None, Some(counter))
        };
        let steps = if self.wait.touches(entry.event) {
            self.cascade(entry.event, &returned, leaving, delta, asked.now_ms)
        } else {
            Vec::new()
        };
        Ok(Decided::Change(Decision::WaitlistLeft(WaitlistLeft {
            at_ms: asked.now_ms,
            entry: entry_id,
            steps,
            idem: asked.tag(),
        })))
    }

    fn decide_confirm(
        &self,
        asked: &Asked<'_>,
        hold_id: HoldId,
        payment_ref: &Option<String>,
    ) -> Result<Decided, Stop> {
        check_payment_ref(payment_ref)?;
        let hold = self.owned(asked, |e| e.owned_hold(hold_id, asked.actor))?;
        self.check_live(hold.status, hold.expires_at_ms(), asked.now_ms)?;
        self.check_booking_room(payment_ref)?;
        Ok(Decided::Change(Decision::HoldConfirmed(HoldConfirmed {
            at_ms: asked.now_ms,
            hold: hold_id,
            booking: self.next_booking_id(),
            payment_ref: payment_ref.clone(),
            idem: asked.tag(),
        })))
    }

    fn decide_release(&self, asked: &Asked<'_>, hold_id: HoldId) -> Result<Decided, Stop> {
        let hold = self.owned(asked, |e| e.owned_hold(hold_id, asked.actor))?;
        self.check_live(hold.status, hold.expires_at_ms(), asked.now_ms)?;
        let base = Decision::HoldReleased(HoldReleased {
            at_ms: asked.now_ms,
            hold: hold_id,
            idem: asked.tag(),
        });
        let counter = hold_id.counter32();
        Ok(Decided::Change(self.with_cascade(
            base,
            counter,
            asked.now_ms,
        )))
    }

    fn decide_cancel(&self, asked: &Asked<'_>, booking_id: BookingId) -> Result<Decided, Stop> {
        let booking = self.owned(asked, |e| e.owned_booking(booking_id, asked.actor))?;
        if booking.is_cancelled() {
            return Err(Rejection::BookingNotActive.into());
        }
        let base = Decision::BookingCancelled(BookingCancelled {
            at_ms: asked.now_ms,
            booking: booking_id,
            idem: asked.tag(),
        });
        let decision = self.with_cascade(base, booking.hold, asked.now_ms);
        Ok(Decided::Change(decision))
    }

    fn decide_extend(
        &self,
        asked: &Asked<'_>,
        hold_id: HoldId,
        ttl_ms: u64,
    ) -> Result<Decided, Stop> {
        check_ttl("ttl_seconds", ttl_ms)?;
        let hold = self.owned(asked, |e| e.owned_hold(hold_id, asked.actor))?;
        self.check_live(hold.status, hold.expires_at_ms(), asked.now_ms)?;
        let latest_ms = hold.created_at_ms + HOLD_LIFETIME_MS_MAX;
        let expires_at_ms = asked.now_ms + ttl_ms;
        if expires_at_ms > latest_ms {
            return Err(Rejection::ExtensionLimit { latest_ms }.into());
        }
        Ok(Decided::Change(Decision::HoldExtended(HoldExtended {
            at_ms: asked.now_ms,
            hold: hold_id,
            expires_at_ms,
            idem: asked.tag(),
        })))
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

    /// Whether `actor` may see and act on what belongs to the interned `user`: the admin
    /// on anything, a user on their own only (another user's is `not_found`).
    pub(crate) fn may_see(&self, actor: &Actor, user: u32) -> bool {
        match actor {
            Actor::Admin => true,
            Actor::User(u) => self.state.users[user as usize] == *u,
        }
    }

    pub(crate) fn owned_hold(
        &self,
        id: HoldId,
        actor: &Actor,
    ) -> Result<&crate::state::Hold, Rejection> {
        self.hold_at(id)
            .filter(|hold| self.may_see(actor, hold.user))
            .ok_or(Rejection::NotFound { what: "hold" })
    }

    pub(crate) fn owned_booking(
        &self,
        id: BookingId,
        actor: &Actor,
    ) -> Result<&crate::state::Booking, Rejection> {
        self.booking_at(id)
            .filter(|booking| self.may_see(actor, self.state.hold(booking.hold).user))
            .ok_or(Rejection::NotFound { what: "booking" })
    }

    /// What every command on an existing hold, booking or entry checks first, in this
    /// order: the idempotency key's shape, the object (`find`: not found unless it is the
    /// actor's), then a remembered answer.
    fn owned<'a, T>(
        &'a self,
        asked: &Asked<'_>,
        find: impl FnOnce(&'a Self) -> Result<T, Rejection>,
    ) -> Result<T, Stop> {
        check_idempotency(asked.idempotency)?;
        let found = find(self)?;
        self.remembered(asked.actor, asked.idempotency, asked.now_ms)?;
        Ok(found)
    }

    /// Stops at the remembered answer of an idempotent retry, or at the reuse of its key
    /// with another request.
    fn remembered(
        &self,
        actor: &Actor,
        idem: &Option<Idempotency>,
        now_ms: u64,
    ) -> Result<(), Stop> {
        let Some(idem) = idem else { return Ok(()) };
        let scope = idem_scope(actor);
        let Some(entry) = self.state.idem.get(&(scope, idem.key.clone())) else {
            return Ok(());
        };
        if entry.at_ms + IDEMPOTENCY_RETENTION_MS <= now_ms {
            return Ok(());
        }
        if entry.fingerprint != idem.fingerprint {
            return Err(Rejection::IdempotencyKeyReused.into());
        }
        let shard = self.shard();
        let output = match &entry.outcome {
            IdemOutcome::Refused(refusal) => return Err(Stop::Replayed(refusal.into())),
            IdemOutcome::EventCreated(i) => Output::Event(self.event_view(*i)),
            IdemOutcome::HoldPlaced(h) | IdemOutcome::Extended(h) => {
                Output::Hold(self.hold_view_as(*h, HoldStatus::Held))
            }
            IdemOutcome::Released(h) => Output::Hold(self.hold_view_as(*h, HoldStatus::Released)),
            IdemOutcome::Purchased(b) | IdemOutcome::Confirmed(b) => {
                let mut view = self.booking_view(BookingId::new(shard, *b));
                view.status = crate::view::BookingStatus::Confirmed;
                view.cancelled_at_ms = None;
                Output::Booking(view)
            }
            IdemOutcome::Cancelled(b) => {
                Output::Booking(self.booking_view(BookingId::new(shard, *b)))
            }
            IdemOutcome::Joined(c) | IdemOutcome::Left(c) => Output::Entry(
                self.entry_view(u32::try_from(*c).expect("counters fit in u32"), now_ms),
            ),
        };
        Err(Stop::Remembered(Box::new(output)))
    }

    fn decide_event(
        &self,
        new: &NewEvent,
        now_ms: u64,
        offer_ttl_ms: Option<u64>,
    ) -> Result<Decided, Stop> {
        check_event_fields(new, offer_ttl_ms)?;
        let sections = section_specs(new)?;
        let actor = Actor::Admin;
        self.remembered(&actor, &new.idempotency, now_ms)?;
        if self.state.event_index.contains_key(&new.id) {
            return Err(Rejection::EventExists.into());
        }
        if self.state.events.len() >= EVENTS_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::Events).into());
        }
        let event = Box::new(EventSpec {
            id: new.id.clone(),
            name: new.name.clone(),
            starts_at_ms: new.starts_at_ms,
            max_per_user: new.max_per_user,
            hold_ttl_ms: new.hold_ttl_ms.unwrap_or(HOLD_TTL_MS_DEFAULT),
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

    fn decide_place(
        &self,
        new: &NewHold,
        now_ms: u64,
        best: Option<&BestAvailable>,
    ) -> Result<Decided, Stop> {
        let tickets = check_hold_request(new, best)?;
        check_idempotency(&new.idempotency)?;
        let t = self.take(new, now_ms, best, tickets)?;
        if self.derived.live_holds >= LIVE_HOLDS_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::LiveHolds).into());
        }
        let hold_ttl_ms = self.state.events[t.event as usize].hold_ttl_ms;
        Ok(Decided::Change(Decision::HoldPlaced(HoldPlaced {
            at_ms: now_ms,
            hold: self.next_hold_id(),
            event: t.event,
            user: t.user,
            lines: t.lines,
            total_cents: t.total_cents,
            expires_at_ms: now_ms + new.ttl_ms.unwrap_or(hold_ttl_ms),
            idem: t.idem,
        })))
    }

    /// A purchase: the checks of a hold (its TTL too: a purchase leaves no hold, so a valid
    /// TTL changes nothing, but one out of range is refused as a hold's is), then room for
    /// the booking.
    fn decide_purchase(
        &self,
        new: &NewHold,
        now_ms: u64,
        best: Option<&BestAvailable>,
    ) -> Result<Decided, Stop> {
        let tickets = check_hold_request(new, best)?;
        check_payment_ref(&new.payment_ref)?;
        check_idempotency(&new.idempotency)?;
        let t = self.take(new, now_ms, best, tickets)?;
        self.check_booking_room(&new.payment_ref)?;
        Ok(Decided::Change(Decision::Purchased(Purchased {
            at_ms: now_ms,
            hold: self.next_hold_id(),
            booking: self.next_booking_id(),
            event: t.event,
            user: t.user,
            lines: t.lines,
            total_cents: t.total_cents,
            payment_ref: new.payment_ref.clone(),
            idem: t.idem,
        })))
    }

    /// The rules a hold and a purchase share, from the event on: what the request takes
    /// (named lines, then best available), checked against the user's cap, the seats and
    /// the counts, and the shard's room for one more hold.
    fn take(
        &self,
        new: &NewHold,
        now_ms: u64,
        best: Option<&BestAvailable>,
        tickets: u64,
    ) -> Result<Tickets, Stop> {
        let &index = self
            .state
            .event_index
            .get(&new.event_id)
            .ok_or(Rejection::NotFound { what: "event" })?;
        let event = &self.state.events[index as usize];
        let (mut lines, mut total_cents) = named_lines(event, new)?;
        let best_sections = best.map(|b| self.best_sections(event, b)).transpose()?;
        self.remembered(&new.actor, &new.idempotency, now_ms)?;
        let user = self.user_index(&new.user_id);
        self.check_takeable(index, user, tickets, new, &lines)?;
        if let (Some(best), Some(sections)) = (best, best_sections) {
            let (section, seats) = self.pick_best(index, &sections, best)?;
            lines
                .seats
                .extend(seats.into_iter().map(|seat| (section, seat)));
            total_cents += event.sections[section as usize].price_cents * u64::from(best.qty);
        }
        if self.state.holds.len() as u64 >= HOLDS_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::Holds).into());
        }
        Ok(Tickets {
            event: index,
            user: match user {
                Some(u) => UserRef::Known(u),
                None => UserRef::New(new.user_id.clone()),
            },
            lines,
            total_cents,
            idem: tag(&new.actor, &new.idempotency),
        })
    }

    /// The user's cap, then the named seats, then the GA counts.
    fn check_takeable(
        &self,
        index: u32,
        user: Option<u32>,
        tickets: u64,
        new: &NewHold,
        lines: &Lines,
    ) -> Result<(), Rejection> {
        let event = &self.state.events[index as usize];
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
        Ok(())
    }
}

/// What a hold or purchase takes, every shared rule passed.
struct Tickets {
    event: u32,
    user: UserRef,
    lines: Lines,
    total_cents: u64,
    idem: Option<Box<IdemTag>>,
}

/// Who asks, with which idempotency key, and when: what every command on an existing
/// hold, booking or entry carries.
struct Asked<'a> {
    actor: &'a Actor,
    idempotency: &'a Option<Idempotency>,
    now_ms: u64,
}

impl Asked<'_> {
    /// The idempotency key to remember with the decision.
    fn tag(&self) -> Option<Box<IdemTag>> {
        tag(self.actor, self.idempotency)
    }
}

/// Why `decide` stops before a decision: a rule refused the command, or it is an
/// idempotent retry whose remembered answer is the answer. Either way nothing changes.
enum Stop {
    Rejected(Rejection),
    /// A refusal remembered with the key: answered again, nothing logged.
    Replayed(Rejection),
    /// Boxed: an answer is large, and a retry is the rare path.
    Remembered(Box<Output>),
}

impl From<Rejection> for Stop {
    fn from(rejection: Rejection) -> Self {
        Stop::Rejected(rejection)
    }
}

/// The request alone, before the event is looked up: who, what, how many, for how long (a
/// purchase's TTL is checked as a hold's). Returns the tickets asked for.
fn check_hold_request(new: &NewHold, best: Option<&BestAvailable>) -> Result<u64, Rejection> {
    if !is_valid_user_id(&new.user_id) {
        return Err(invalid("user_id", USER_ID_RULE));
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
        check_ttl("ttl_seconds", ttl)?;
    }
    Ok(tickets)
}

/// The GA items and named seats of a request in `event`, and their price.
fn named_lines(event: &Event, new: &NewHold) -> Result<(Lines, u64), Rejection> {
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
    Ok((lines, total_cents))
}

/// An event's own fields, before its sections.
fn check_event_fields(new: &NewEvent, offer_ttl_ms: Option<u64>) -> Result<(), Rejection> {
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
    check_ttl(
        "hold_ttl_seconds",
        new.hold_ttl_ms.unwrap_or(HOLD_TTL_MS_DEFAULT),
    )?;
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
    check_idempotency(&new.idempotency)
}

/// An event's sections, validated in order (ids and row labels unique in the event, the
/// event's seats within its limit).
fn section_specs(new: &NewEvent) -> Result<Vec<SectionSpec>, Rejection> {
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
            Layout::General { capacity } => {
                if !(1..=GA_CAPACITY_MAX).contains(capacity) {
                    return Err(invalid(
                        format!("sections[{i}].capacity"),
                        format!("from 1 to {GA_CAPACITY_MAX}"),
                    ));
                }
                (None, *capacity)
            }
            Layout::Seated { rows } => {
                let (rows, seats) = seated_rows(i, rows, &mut labels)?;
                seats_in_event += seats;
                if seats_in_event > SEATS_PER_EVENT_MAX {
                    return Err(invalid(
                        "sections",
                        format!("at most {SEATS_PER_EVENT_MAX} seats per event"),
                    ));
                }
                (Some(rows), seats)
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
    Ok(sections)
}

/// The rows of seated section `i`, and its seats; `labels` are the event's row labels
/// so far.
fn seated_rows(
    i: usize,
    rows: &[NewRow],
    labels: &mut BTreeSet<String>,
) -> Result<(Vec<(String, u32)>, u32), Rejection> {
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
    Ok((out, seats))
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
    /// seats gives them. Else `no_adjacent_seats` when at least `qty` seats are free in the
    /// sections tried (together: a request without `section_id` tries them all, and its
    /// buyer is told seats are left, not that the event is sold out), `sold_out` when fewer
    /// are. Either names the section with the most free seats.
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
        let free: u64 = sections
            .iter()
            .map(|&s| u64::from(e.sections[s as usize].available()))
            .sum();
        if free >= u64::from(best.qty) {
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
    fn decide_join(&self, new: &NewEntry, now_ms: u64) -> Result<Decided, Stop> {
        if !is_valid_user_id(&new.user_id) {
            return Err(invalid("user_id", USER_ID_RULE).into());
        }
        if new.qty == 0 {
            return Err(invalid("qty", "at least 1").into());
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
            return Err(invalid("qty", format!("at most {most} in this section")).into());
        }
        if let Some(max) = event.max_per_user {
            if new.qty > max {
                return Err(
                    invalid("qty", format!("at most the event's max_per_user, {max}")).into(),
                );
            }
        }
        if new.qty > section.capacity {
            // Never servable: the entry would block every later one for good.
            return Err(invalid(
                "qty",
                format!("more than the section's {} tickets", section.capacity),
            )
            .into());
        }
        self.remembered(&new.actor, &new.idempotency, now_ms)?;
        let user = self.user_index(&new.user_id);
        if let Some(&c) = user.and_then(|u| self.derived.live_entry.get(&(index, u))) {
            return Err(Rejection::AlreadyWaiting {
                entry_id: self.entry_id(c),
            }
            .into());
        }
        if section.available() >= new.qty {
            return Err(Rejection::TicketsAvailable {
                available: section.available(),
            }
            .into());
        }
        if self.wait.entries.len() >= WAITLIST_ENTRIES_PER_SHARD_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::WaitlistEntries).into());
        }
        let live = self
            .derived
            .live_per_event
            .get(&index)
            .copied()
            .unwrap_or(0);
        if live as usize >= WAITLIST_LIVE_PER_EVENT_MAX {
            return Err(Rejection::OverCapacity(ShardLimit::WaitlistPerEvent).into());
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
