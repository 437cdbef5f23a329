//! Verification: what the run was told it bought, against what the server says it sold.
//!
//! Every connection keeps a [`Ledger`] of the answers it got: a 2xx hold is held, a 2xx
//! purchase or confirm is sold, a 2xx release is gone, a 4xx or 503 changed nothing. An
//! answer that never came (timeout, broken connection, another 5xx) leaves the outcome
//! unknown, and the check allows for it as a range instead of guessing. After the run the
//! tool reads back every section and seat map ([`Observed`]) and [`verify`] checks:
//!
//! 1. per section, `sold + held + available == capacity`;
//! 2. the tickets the run was sold and holds it still has fit in the capacity: an oversell
//!    shows up here even when the server's own counts add up;
//! 3. `sold` and `held` equal what the run was told (within the unknown outcomes);
//! 4. no seat is in two live holds or bookings of the run, the seat map shows each seat the
//!    run owns as sold or held, and its counts match the section's;
//! 5. a section that answered `sold_out` and never got tickets back has none available.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::workload::{Effect, EventPlan, Outcome, Tickets, WaitFact, WaitOp};

/// The final state of a hold the run placed, as far as the run knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Held,
    Sold,
    Gone,
    /// Left to expire (counted as gone once its TTL and the sweep have passed).
    Expiring,
    /// Held, or sold by a confirm whose answer never came.
    HeldOrSold,
    /// Held, or released by a release whose answer never came.
    HeldOrGone,
}

#[derive(Debug, Clone)]
struct HoldRec {
    tickets: Tickets,
    state: HoldState,
}

/// What one connection (or, merged, the whole run) was told.
#[derive(Debug, Default)]
pub struct Ledger {
    holds: HashMap<String, HoldRec>,
    /// Tickets of successful holds the run will not touch again (no id kept), by section.
    held_ga: BTreeMap<String, u64>,
    /// Seats of those holds.
    held_seats: Vec<Tickets>,
    /// GA tickets of successful purchases, by section.
    sold_ga: BTreeMap<String, u64>,
    /// Seats of successful purchases, one entry per purchase.
    bought: Vec<Tickets>,
    /// Successful holds and purchases.
    acks: u64,
    /// Holds and purchases whose answer never came: they may or may not have happened.
    maybe: Vec<(Tickets, bool)>,
    /// Sections that answered `sold_out`.
    sold_out_seen: HashSet<String>,
    /// When the last expiring hold's TTL ends.
    expiring_until: Option<Instant>,
    /// The waitlist workload's requests with their answers, in no particular order.
    wait: Vec<WaitFact>,
}

impl Ledger {
    /// Records the answer to a request with effect `effect`.
    /// `hold_id` is the id in a successful hold's answer, for holds the run will confirm or
    /// release later (`None`: the hold is counted, not kept); `code` is the error code.
    pub fn record(
        &mut self,
        effect: &Effect,
        status: u16,
        hold_id: Option<String>,
        code: Option<&str>,
        expires: Option<Instant>,
    ) {
        let outcome = Outcome::of_status(status);
        if code == Some("sold_out") {
            if let Effect::Place { tickets, .. } | Effect::Buy { tickets } = effect {
                self.sold_out_seen
                    .extend(tickets.items.iter().map(|(s, _)| s.clone()));
            }
        }
        match (effect, outcome) {
            (Effect::Wait(fact), _) => self.wait.push(fact.clone()),
            (Effect::None, _) | (_, Outcome::Refused) => {}
            (Effect::Place { tickets, expiring }, Outcome::Done) => {
                let state = if *expiring {
                    self.expiring_until = self.expiring_until.max(expires);
                    HoldState::Expiring
                } else {
                    HoldState::Held
                };
                self.acks += 1;
                match hold_id {
                    Some(id) => {
                        let rec = HoldRec {
                            tickets: tickets.clone(),
                            state,
                        };
                        self.holds.insert(id, rec);
                    }
                    None if *expiring => {}
                    None => add_tickets(&mut self.held_ga, &mut self.held_seats, tickets),
                }
            }
            (Effect::Place { tickets, expiring }, Outcome::Unknown) => {
                if *expiring {
                    self.expiring_until = self.expiring_until.max(expires);
                } else {
                    self.maybe.push((tickets.clone(), false));
                }
            }
            (Effect::Buy { tickets }, Outcome::Done) => {
                self.acks += 1;
                add_tickets(&mut self.sold_ga, &mut self.bought, tickets);
            }
            (Effect::Buy { tickets }, Outcome::Unknown) => self.maybe.push((tickets.clone(), true)),
            (Effect::Confirm { hold_id }, outcome) => self.set(hold_id, outcome, HoldState::Sold),
            (Effect::Release { hold_id }, outcome) => self.set(hold_id, outcome, HoldState::Gone),
        }
    }

    fn set(&mut self, hold_id: &str, outcome: Outcome, done: HoldState) {
        if let Some(rec) = self.holds.get_mut(hold_id) {
            if rec.state == HoldState::Held {
                rec.state = match (outcome, done) {
                    (Outcome::Done, state) => state,
                    (_, HoldState::Sold) => HoldState::HeldOrSold,
                    (_, _) => HoldState::HeldOrGone,
                };
            }
        }
    }

    /// Adds another connection's ledger to this one.
    pub fn merge(&mut self, other: Ledger) {
        self.holds.extend(other.holds);
        for (mine, theirs) in [
            (&mut self.held_ga, other.held_ga),
            (&mut self.sold_ga, other.sold_ga),
        ] {
            for (section, n) in theirs {
                *mine.entry(section).or_default() += n;
            }
        }
        self.held_seats.extend(other.held_seats);
        self.bought.extend(other.bought);
        self.acks += other.acks;
        self.maybe.extend(other.maybe);
        self.sold_out_seen.extend(other.sold_out_seen);
        self.expiring_until = self.expiring_until.max(other.expiring_until);
        self.wait.extend(other.wait);
    }

    /// The waiting-list entries the run joined (their ids), to read back after the run.
    pub fn entry_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .wait
            .iter()
            .filter_map(|f| match &f.what {
                WaitOp::Join {
                    entry: Some(id), ..
                } => Some(id.clone()),
                _ => None,
            })
            .collect();
        ids.sort_by_key(|id| counter_of(id));
        ids
    }

    /// When every hold left to expire is past its TTL.
    pub fn expiring_until(&self) -> Option<Instant> {
        self.expiring_until
    }

    /// Successful holds and purchases (for the report).
    pub fn acknowledged(&self) -> u64 {
        self.acks
            + self
                .wait
                .iter()
                .filter(|f| {
                    f.outcome == Outcome::Done
                        && matches!(f.what, WaitOp::Buy { .. } | WaitOp::ConfirmOffer { .. })
                })
                .count() as u64
    }

    /// Per section, the range of tickets sold and held that the answers allow.
    fn expected(&self) -> BTreeMap<String, Expect> {
        let mut out: BTreeMap<String, Expect> = BTreeMap::new();
        for (section, n) in &self.sold_ga {
            let e = out.entry(section.clone()).or_default();
            e.sold_min += n;
            e.sold_max += n;
        }
        for (section, n) in &self.held_ga {
            let e = out.entry(section.clone()).or_default();
            e.held_min += n;
            e.held_max += n;
        }
        let mut add = |tickets: &Tickets, f: &dyn Fn(&mut Expect, u64)| {
            for (section, qty) in &tickets.items {
                f(out.entry(section.clone()).or_default(), u64::from(*qty));
            }
            for (section, _) in &tickets.seats {
                f(out.entry(section.clone()).or_default(), 1);
            }
        };
        for tickets in &self.bought {
            add(tickets, &|e, q| {
                e.sold_min += q;
                e.sold_max += q;
            });
        }
        for tickets in &self.held_seats {
            add(tickets, &|e, q| {
                e.held_min += q;
                e.held_max += q;
            });
        }
        for (tickets, is_buy) in &self.maybe {
            if *is_buy {
                add(tickets, &|e, q| e.sold_max += q);
            } else {
                add(tickets, &|e, q| e.held_max += q);
            }
        }
        for rec in self.holds.values() {
            let f: &dyn Fn(&mut Expect, u64) = match rec.state {
                HoldState::Held => &|e, q| {
                    e.held_min += q;
                    e.held_max += q;
                },
                HoldState::Sold => &|e, q| {
                    e.sold_min += q;
                    e.sold_max += q;
                },
                HoldState::HeldOrSold => &|e, q| {
                    e.held_max += q;
                    e.sold_max += q;
                },
                HoldState::HeldOrGone => &|e, q| e.held_max += q,
                HoldState::Gone | HoldState::Expiring => &|_, _| {},
            };
            add(&rec.tickets, f);
        }
        out
    }

    /// Seats the run owns for sure (`sold` or `held`, with who owns them), and seats whose
    /// state the run cannot know.
    fn seats(&self) -> (Vec<OwnedSeat>, HashSet<String>) {
        let mut owned = Vec::new();
        let mut maybe = HashSet::new();
        for (n, tickets) in self.bought.iter().enumerate() {
            for (section, seat) in &tickets.seats {
                let by = format!("purchase #{n}");
                owned.push((section.clone(), seat.clone(), SeatStatus::Sold, by));
            }
        }
        for (n, tickets) in self.held_seats.iter().enumerate() {
            for (section, seat) in &tickets.seats {
                let by = format!("hold #{n}");
                owned.push((section.clone(), seat.clone(), SeatStatus::Held, by));
            }
        }
        for (id, rec) in &self.holds {
            let status = match rec.state {
                HoldState::Held => Some(SeatStatus::Held),
                HoldState::Sold => Some(SeatStatus::Sold),
                HoldState::Gone | HoldState::Expiring => None,
                HoldState::HeldOrSold | HoldState::HeldOrGone => {
                    maybe.extend(rec.tickets.seats.iter().map(|(_, s)| s.clone()));
                    None
                }
            };
            if let Some(status) = status {
                for (section, seat) in &rec.tickets.seats {
                    owned.push((section.clone(), seat.clone(), status, format!("hold {id}")));
                }
            }
        }
        for (tickets, _) in &self.maybe {
            maybe.extend(tickets.seats.iter().map(|(_, s)| s.clone()));
        }
        (owned, maybe)
    }
}

/// A seat the run owns: section, seat id, status, and who owns it.
type OwnedSeat = (String, String, SeatStatus, String);

/// Adds GA quantities to `ga` and, if there are seats, the seats to `seats`.
fn add_tickets(ga: &mut BTreeMap<String, u64>, seats: &mut Vec<Tickets>, tickets: &Tickets) {
    for (section, qty) in &tickets.items {
        match ga.get_mut(section) {
            Some(n) => *n += u64::from(*qty),
            None => {
                ga.insert(section.clone(), u64::from(*qty));
            }
        }
    }
    if !tickets.seats.is_empty() {
        seats.push(Tickets {
            items: vec![],
            seats: tickets.seats.clone(),
        });
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Expect {
    sold_min: u64,
    sold_max: u64,
    held_min: u64,
    held_max: u64,
}

/// A seat's state in the seat map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    /// Free.
    Free,
    /// In a live hold.
    Held,
    /// Sold.
    Sold,
}

/// A section as the server reports it after the run.
#[derive(Debug, Clone, Serialize)]
pub struct ObservedSection {
    /// Section id.
    pub id: String,
    /// Capacity.
    pub capacity: u64,
    /// Available now.
    pub available: u64,
    /// Held now.
    pub held: u64,
    /// Sold.
    pub sold: u64,
    /// The seat map of a seated section: `(seat id, status)`.
    #[serde(skip)]
    pub seats: Option<Vec<(String, SeatStatus)>>,
    /// Entries waiting (`waiting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<u64>,
    /// Tickets set aside for the waiting list (`set_aside`, part of `held`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<u64>,
}

/// A waiting-list entry as `GET /v1/waitlist/{id}` answers after the run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ObservedEntry {
    /// Entry id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Its section.
    pub section_id: String,
    /// Tickets wanted.
    pub qty: u64,
    /// `waiting`, `offered`, `accepted`, `expired`, `declined` or `left`.
    pub status: String,
    /// 1-based place among the section's waiting entries; null once not waiting.
    pub position: Option<u64>,
    /// The offer's hold, once offered.
    #[serde(default)]
    pub hold_id: Option<String>,
    /// When it joined.
    pub created_at: String,
}

/// What the server reports for the run's event.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Its sections.
    pub sections: Vec<ObservedSection>,
    /// The entries the run joined (waitlist workload), read back one by one.
    pub entries: Vec<ObservedEntry>,
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// No check failed.
    pub passed: bool,
    /// Each failed check, in words.
    pub failures: Vec<String>,
    /// Per section: the server's counts.
    pub sections: Vec<ObservedSection>,
    /// Successful holds and purchases the run was told of.
    pub acknowledged: u64,
    /// Holds and purchases whose outcome the run could not know.
    pub unknown_outcomes: u64,
}

/// Checks the server's state after a run against what the run was told (see the module doc).
pub fn verify(plan: &EventPlan, ledger: &Ledger, observed: &Observed) -> Verdict {
    let mut failures = Vec::new();
    let expected = ledger.expected();
    let (owned, maybe) = ledger.seats();
    for section in &plan.sections {
        let Some(obs) = observed.sections.iter().find(|s| s.id == section.id) else {
            failures.push(format!("section {}: missing from the event", section.id));
            continue;
        };
        let id = &section.id;
        let sum = obs.sold + obs.held + obs.available;
        if sum != obs.capacity || obs.capacity != section.capacity {
            failures.push(format!(
                "section {id}: sold {} + held {} + available {} = {sum}, capacity {} (created with {})",
                obs.sold, obs.held, obs.available, obs.capacity, section.capacity
            ));
        }
        if !ledger.wait.is_empty() {
            check_waitlist(id, section.capacity, obs, ledger, observed, &mut failures);
            continue;
        }
        let e = expected.get(id).copied().unwrap_or_default();
        if e.sold_min + e.held_min > section.capacity {
            failures.push(format!(
                "section {id}: oversold: the run was sold {} and holds {} of {} tickets",
                e.sold_min, e.held_min, section.capacity
            ));
        }
        if !(e.sold_min..=e.sold_max).contains(&obs.sold) {
            failures.push(format!(
                "section {id}: server says sold {}, the run was told {}",
                obs.sold,
                range(e.sold_min, e.sold_max)
            ));
        }
        if !(e.held_min..=e.held_max).contains(&obs.held) {
            failures.push(format!(
                "section {id}: server says held {}, the run holds {}",
                obs.held,
                range(e.held_min, e.held_max)
            ));
        }
        if ledger.sold_out_seen.contains(id) && !section.returns && obs.available != 0 {
            failures.push(format!(
                "section {id}: answered sold_out, yet {} available and none came back",
                obs.available
            ));
        }
        if section.seated {
            let section_owned: Vec<_> = owned.iter().filter(|o| &o.0 == id).collect();
            check_seats(id, obs, &section_owned, &maybe, &mut failures);
        }
    }
    Verdict {
        passed: failures.is_empty(),
        failures,
        sections: observed.sections.clone(),
        acknowledged: ledger.acknowledged(),
        unknown_outcomes: ledger.maybe.len() as u64
            + ledger
                .wait
                .iter()
                .filter(|f| f.outcome == Outcome::Unknown)
                .count() as u64
            + ledger
                .holds
                .values()
                .filter(|h| matches!(h.state, HoldState::HeldOrGone | HoldState::HeldOrSold))
                .count() as u64,
    }
}

fn check_seats(
    id: &str,
    obs: &ObservedSection,
    owned: &[&OwnedSeat],
    maybe: &HashSet<String>,
    failures: &mut Vec<String>,
) {
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (_, seat, _, by) in owned {
        if let Some(first) = owner.insert(seat, by) {
            failures.push(format!(
                "seat {seat} of {id}: sold twice, to {first} and {by}"
            ));
        }
    }
    let Some(map) = &obs.seats else {
        failures.push(format!("section {id}: no seat map"));
        return;
    };
    let status: HashMap<&str, SeatStatus> = map.iter().map(|(s, st)| (s.as_str(), *st)).collect();
    if status.len() as u64 != obs.capacity || map.len() as u64 != obs.capacity {
        failures.push(format!(
            "section {id}: seat map lists {} seats ({} distinct), capacity {}",
            map.len(),
            status.len(),
            obs.capacity
        ));
    }
    let count = |want| map.iter().filter(|(_, st)| *st == want).count() as u64;
    let (sold, held) = (count(SeatStatus::Sold), count(SeatStatus::Held));
    if sold != obs.sold || held != obs.held {
        failures.push(format!(
            "section {id}: seat map shows {sold} sold and {held} held, the section {} and {}",
            obs.sold, obs.held
        ));
    }
    for (_, seat, want, by) in owned {
        let got = status.get(seat.as_str()).copied();
        if got != Some(*want) {
            failures.push(format!(
                "seat {seat} ({by}): expected {want:?}, seat map says {got:?}"
            ));
        }
    }
    let unexplained = map
        .iter()
        .filter(|(seat, st)| {
            *st != SeatStatus::Free && !owner.contains_key(seat.as_str()) && !maybe.contains(seat)
        })
        .count();
    if unexplained > 0 {
        failures.push(format!(
            "section {id}: {unexplained} seats sold or held that the run was never given"
        ));
    }
}

/// An RFC 3339 UTC time (`2026-12-01T20:55:01Z`, `...:01.25Z`) as a key that sorts in
/// time order: the seconds, then the fraction padded to nanoseconds.
fn time_key(text: &str) -> (&str, u64) {
    let (seconds, rest) = text.split_at(text.len().min(19));
    let digits = rest.trim_start_matches('.').trim_end_matches('Z');
    let fraction = format!("{digits:0<9}").parse().unwrap_or(0);
    (seconds, fraction)
}

/// The counter of an id `x-<shard>-<n>` (join order of entries, placement order of holds).
fn counter_of(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// When an entry surely waited: from its join's answer to when it was last seen waiting
/// (`None`: still waiting at the end); and its id.
type Waited<'a> = (Instant, Option<Instant>, &'a str);

/// The waitlist workload's checks on section `id` (the run's only section): counts,
/// sold as told, nothing sold to the public while a fitting entry waited, offers in join
/// order, every confirmed offer a booking of its entry's user, and the entries' final
/// states consistent with each other, with what the run saw and with the section.
fn check_waitlist(
    id: &str,
    capacity: u64,
    obs: &ObservedSection,
    ledger: &Ledger,
    observed: &Observed,
    failures: &mut Vec<String>,
) {
    let run = WaitlistRun::new(id, &ledger.wait, observed);
    run.check_sold(capacity, obs, failures);
    run.check_held(obs, failures);
    run.check_public_while_waiting(failures);
    run.check_offer_order(failures);
    run.check_confirmed_offers(failures);
    run.check_final_entries(obs, failures);
    run.check_never_waiting_again(failures);
}

/// An entry the run joined: (user, qty, join sent, join answered).
type Joined<'a> = (&'a str, u32, Instant, Instant);

/// What the waitlist checks read: the run's facts, the entries it joined, and the
/// entries read back at the end.
struct WaitlistRun<'a> {
    /// The section's id.
    id: &'a str,
    facts: &'a [WaitFact],
    /// Entries the run joined, by id.
    joins: HashMap<&'a str, Joined<'a>>,
    /// The final entries by id.
    finals: HashMap<&'a str, &'a ObservedEntry>,
    /// The final entries in join order.
    entries: Vec<&'a ObservedEntry>,
    /// When each entry was last seen waiting by a poll.
    last_waiting: HashMap<&'a str, Option<Instant>>,
}

impl<'a> WaitlistRun<'a> {
    fn new(id: &'a str, facts: &'a [WaitFact], observed: &'a Observed) -> Self {
        let mut joins = HashMap::new();
        let mut last_waiting: HashMap<&str, Option<Instant>> = HashMap::new();
        for f in facts {
            match (&f.what, f.outcome) {
                (
                    WaitOp::Join {
                        qty,
                        entry: Some(entry),
                    },
                    Outcome::Done,
                ) => {
                    joins.insert(entry.as_str(), (f.user.as_str(), *qty, f.sent, f.answered));
                }
                (
                    WaitOp::Poll {
                        entry,
                        status: Some(status),
                        ..
                    },
                    _,
                ) if status == "waiting" => {
                    let seen = last_waiting.entry(entry).or_insert(Some(f.sent));
                    *seen = (*seen).max(Some(f.sent));
                }
                _ => {}
            }
        }
        let finals = observed
            .entries
            .iter()
            .map(|e| (e.id.as_str(), e))
            .collect();
        let mut entries: Vec<&ObservedEntry> = observed.entries.iter().collect();
        entries.sort_by_key(|e| counter_of(&e.id));
        WaitlistRun {
            id,
            facts,
            joins,
            finals,
            entries,
            last_waiting,
        }
    }

    /// The tickets of the entry `entry` joined for (0 if the run did not join it).
    fn joined_qty(&self, entry: &str) -> u64 {
        self.joins.get(entry).map_or(0, |j| u64::from(j.1))
    }

    /// Check 1, sold as told: bookings bought or confirmed, less those cancelled.
    fn check_sold(&self, capacity: u64, obs: &ObservedSection, failures: &mut Vec<String>) {
        let id = self.id;
        let mut bookings: HashMap<&str, u64> = HashMap::new();
        let mut maybe_sold = 0u64;
        for f in self.facts {
            match (&f.what, f.outcome) {
                (
                    WaitOp::Buy {
                        qty,
                        booking: Some(b),
                    },
                    Outcome::Done,
                ) => {
                    bookings.insert(b, u64::from(*qty));
                }
                (WaitOp::Buy { qty, .. }, Outcome::Unknown) => maybe_sold += u64::from(*qty),
                (
                    WaitOp::ConfirmOffer {
                        entry,
                        booking: Some((b, _, _)),
                        ..
                    },
                    Outcome::Done,
                ) => {
                    bookings.insert(b, self.joined_qty(entry));
                }
                (WaitOp::ConfirmOffer { entry, .. }, Outcome::Unknown) => {
                    maybe_sold += self.joined_qty(entry);
                }
                _ => {}
            }
        }
        let mut sold_min: u64 = bookings.values().sum();
        for f in self.facts {
            if let WaitOp::Cancel { booking } = &f.what {
                let qty = bookings.get(booking.as_str()).copied().unwrap_or(0);
                match f.outcome {
                    Outcome::Done => sold_min -= qty,
                    Outcome::Unknown => {
                        sold_min -= qty;
                        maybe_sold += qty;
                    }
                    Outcome::Refused => {}
                }
            }
        }
        let sold_max = sold_min + maybe_sold;
        if sold_min > capacity {
            failures.push(format!(
                "section {id}: oversold: the run holds {sold_min} bookings' tickets of {capacity}"
            ));
        }
        if !(sold_min..=sold_max).contains(&obs.sold) {
            failures.push(format!(
                "section {id}: server says sold {}, the run was told {}",
                obs.sold,
                range(sold_min, sold_max)
            ));
        }
    }

    /// Check 2, held: the set-aside tickets plus the outstanding offers, as the entries say.
    fn check_held(&self, obs: &ObservedSection, failures: &mut Vec<String>) {
        let offered: u64 = self
            .entries
            .iter()
            .filter(|e| e.status == "offered")
            .map(|e| e.qty)
            .sum();
        let set_aside = obs.set_aside.unwrap_or(0);
        if obs.held != set_aside + offered {
            failures.push(format!(
                "section {}: held {} is not set_aside {set_aside} + offers outstanding {offered}",
                self.id, obs.held
            ));
        }
    }

    /// Check 3: while an entry waited, the public got nothing it could have had: no purchase
    /// of at least an entry's qty was both sent after that entry's join was answered and
    /// answered before the entry was last seen waiting (by a poll, or at the end).
    fn check_public_while_waiting(&self, failures: &mut Vec<String>) {
        // Windows (start, end) by qty; end None = still waiting at the end.
        let mut windows: BTreeMap<u32, Vec<Waited<'_>>> = BTreeMap::new();
        for (entry, (_, qty, _, answered)) in &self.joins {
            let still = self
                .finals
                .get(entry)
                .is_some_and(|e| e.status == "waiting");
            let end = if still {
                None
            } else {
                match self.last_waiting.get(entry) {
                    Some(Some(seen)) => Some(*seen),
                    _ => continue,
                }
            };
            windows
                .entry(*qty)
                .or_default()
                .push((*answered, end, *entry));
        }
        for f in self.facts {
            let (
                WaitOp::Buy {
                    qty,
                    booking: Some(b),
                },
                Outcome::Done,
            ) = (&f.what, f.outcome)
            else {
                continue;
            };
            let covering = windows
                .range(..=*qty)
                .flat_map(|(_, w)| w)
                .find(|(start, end, _)| {
                    *start <= f.sent && end.is_none_or(|end| f.answered <= end)
                });
            if let Some((_, _, entry)) = covering {
                failures.push(format!(
                    "section {}: booking {b} was sold to the public while entry {entry} waited",
                    self.id
                ));
            }
        }
    }

    /// Check 4, offers in join order: an entry offered (now offered, accepted, declined) was
    /// joined before every entry still waiting, and offers' holds follow the entries' order.
    fn check_offer_order(&self, failures: &mut Vec<String>) {
        let entries = &self.entries;
        let first_waiting = entries.iter().position(|e| e.status == "waiting");
        let mut last_hold: Option<(&str, u64)> = None;
        for (n, e) in entries.iter().enumerate() {
            let Some(hold) = &e.hold_id else { continue };
            if first_waiting.is_some_and(|w| w < n) {
                let before = entries[first_waiting.unwrap_or(0)];
                failures.push(format!(
                    "entry {} was offered {hold} while {} (joined earlier) still waits",
                    e.id, before.id
                ));
            }
            let h = counter_of(hold);
            if let Some((prev, p)) = last_hold {
                if h <= p {
                    failures.push(format!(
                        "entry {} was offered {hold} before {prev} went to an earlier entry",
                        e.id
                    ));
                }
            }
            last_hold = Some((hold, h));
        }
        if let Some(pair) = entries
            .windows(2)
            .find(|w| time_key(&w[0].created_at) > time_key(&w[1].created_at))
        {
            failures.push(format!(
                "entries {} and {}: created out of join order",
                pair[0].id, pair[1].id
            ));
        }
    }

    /// Check 5: every confirmed offer is a booking of its entry's user, of the offer's hold,
    /// and its entry is accepted.
    fn check_confirmed_offers(&self, failures: &mut Vec<String>) {
        for f in self.facts {
            let (
                WaitOp::ConfirmOffer {
                    entry,
                    hold,
                    booking,
                },
                Outcome::Done,
            ) = (&f.what, f.outcome)
            else {
                continue;
            };
            let owner = self.joins.get(entry.as_str()).map(|j| j.0);
            match booking {
                Some((_, user, booked_hold))
                    if Some(user.as_str()) == owner && booked_hold == hold => {}
                other => failures.push(format!(
                    "offer {hold} of entry {entry} (user {owner:?}) confirmed as {other:?}"
                )),
            }
            match self.finals.get(entry.as_str()) {
                Some(e) if e.status == "accepted" && e.hold_id.as_deref() == Some(hold) => {}
                other => failures.push(format!(
                    "entry {entry}: its offer {hold} was confirmed, yet it reads {other:?}"
                )),
            }
        }
    }

    /// Check 6, the final entries: one per join, as joined; positions 1.. in join order among
    /// the waiting ones, none for the others; an offer's hold once offered; the count of
    /// waiting entries is the section's.
    fn check_final_entries(&self, obs: &ObservedSection, failures: &mut Vec<String>) {
        let id = self.id;
        let mut position = 0;
        for e in &self.entries {
            let Some((user, qty, _, _)) = self.joins.get(e.id.as_str()) else {
                failures.push(format!(
                    "entry {}: read back, but the run never joined it",
                    e.id
                ));
                continue;
            };
            if e.user_id != *user || e.qty != u64::from(*qty) || e.section_id != id {
                failures.push(format!(
                    "entry {}: reads user {} qty {} section {}, joined by {user} for {qty} of {id}",
                    e.id, e.user_id, e.qty, e.section_id
                ));
            }
            let consistent = match e.status.as_str() {
                "waiting" => {
                    position += 1;
                    e.position == Some(position) && e.hold_id.is_none()
                }
                "offered" | "accepted" | "declined" => e.position.is_none() && e.hold_id.is_some(),
                "expired" | "left" => e.position.is_none(),
                _ => false,
            };
            if !consistent {
                failures.push(format!("entry {}: inconsistent final state {e:?}", e.id));
            }
        }
        if self.joins.len() != self.entries.len() {
            failures.push(format!(
                "the run joined {} entries, {} read back",
                self.joins.len(),
                self.entries.len()
            ));
        }
        if obs.waiting.is_some_and(|w| w != position) {
            failures.push(format!(
                "section {id}: shows {} waiting, the entries {position}",
                obs.waiting.unwrap_or(0)
            ));
        }
    }

    /// Check 7: no poll saw an entry go back to waiting after a poll saw it offered.
    fn check_never_waiting_again(&self, failures: &mut Vec<String>) {
        let mut seen_offered: HashMap<&str, Instant> = HashMap::new();
        for f in self.facts {
            if let WaitOp::Poll {
                entry,
                status: Some(status),
                ..
            } = &f.what
            {
                if status != "waiting" {
                    let t = seen_offered.entry(entry).or_insert(f.answered);
                    *t = (*t).min(f.answered);
                }
            }
        }
        for (entry, t) in &seen_offered {
            if let Some(Some(w)) = self.last_waiting.get(entry) {
                if w > t {
                    failures.push(format!(
                        "entry {entry}: read waiting again after it was offered"
                    ));
                }
            }
        }
    }
}

fn range(min: u64, max: u64) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min} to {max}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::workload::SectionPlan;

    fn plan(seated: bool, capacity: u64) -> EventPlan {
        EventPlan {
            id: "e".into(),
            body: serde_json::json!({}),
            sections: vec![SectionPlan {
                id: "s".into(),
                capacity,
                seated,
                returns: false,
            }],
        }
    }

    fn ga(qty: u32) -> Tickets {
        Tickets {
            items: vec![("s".into(), qty)],
            seats: vec![],
        }
    }

    fn seats(ids: &[&str]) -> Tickets {
        Tickets {
            items: vec![],
            seats: ids
                .iter()
                .map(|s| ("s".to_string(), s.to_string()))
                .collect(),
        }
    }

    fn section(capacity: u64, available: u64, held: u64, sold: u64) -> Observed {
        Observed {
            sections: vec![ObservedSection {
                id: "s".into(),
                capacity,
                available,
                held,
                sold,
                seats: None,
                waiting: None,
                set_aside: None,
            }],
            entries: Vec::new(),
        }
    }

    fn hold(ledger: &mut Ledger, id: &str, tickets: Tickets) {
        let effect = Effect::Place {
            tickets,
            expiring: false,
        };
        ledger.record(&effect, 201, Some(id.into()), None, None);
    }

    fn buy(ledger: &mut Ledger, tickets: Tickets) {
        ledger.record(&Effect::Buy { tickets }, 201, None, None, None);
    }

    #[test]
    fn a_consistent_run_passes() {
        let mut ledger = Ledger::default();
        hold(&mut ledger, "h-0-1", ga(2));
        hold(&mut ledger, "h-0-2", ga(1));
        buy(&mut ledger, ga(3));
        let confirm = Effect::Confirm {
            hold_id: "h-0-2".into(),
        };
        ledger.record(&confirm, 201, None, None, None);
        ledger.record(
            &Effect::Buy { tickets: ga(1) },
            409,
            None,
            Some("sold_out"),
            None,
        );
        let verdict = verify(&plan(false, 6), &ledger, &section(6, 0, 2, 4));
        assert!(verdict.passed, "{:?}", verdict.failures);
        assert_eq!(verdict.acknowledged, 3);
    }

    #[test]
    fn an_oversold_run_fails_even_when_the_server_counts_add_up() {
        // Five buyers were each told "yours" for a section of four tickets.
        let mut ledger = Ledger::default();
        for _ in 0..5 {
            buy(&mut ledger, ga(1));
        }
        let verdict = verify(&plan(false, 4), &ledger, &section(4, 0, 0, 4));
        assert!(!verdict.passed);
        assert!(
            verdict.failures.iter().any(|f| f.contains("oversold")),
            "{:?}",
            verdict.failures
        );
    }

    #[test]
    fn counts_that_do_not_add_up_fail() {
        let mut ledger = Ledger::default();
        buy(&mut ledger, ga(1));
        let verdict = verify(&plan(false, 4), &ledger, &section(4, 2, 0, 1));
        assert!(
            verdict
                .failures
                .iter()
                .any(|f| f.contains("= 3, capacity 4")),
            "{:?}",
            verdict.failures
        );
    }

    #[test]
    fn sold_more_than_the_run_was_told_fails() {
        let mut ledger = Ledger::default();
        buy(&mut ledger, ga(1));
        let verdict = verify(&plan(false, 4), &ledger, &section(4, 2, 0, 2));
        assert!(verdict
            .failures
            .iter()
            .any(|f| f.contains("server says sold 2")));
    }

    #[test]
    fn unknown_outcomes_widen_the_range() {
        let mut ledger = Ledger::default();
        buy(&mut ledger, ga(1));
        ledger.record(&Effect::Buy { tickets: ga(1) }, 0, None, None, None);
        assert!(verify(&plan(false, 4), &ledger, &section(4, 2, 0, 2)).passed);
        assert!(verify(&plan(false, 4), &ledger, &section(4, 3, 0, 1)).passed);
        assert!(!verify(&plan(false, 4), &ledger, &section(4, 1, 0, 3)).passed);
    }

    #[test]
    fn sold_out_with_tickets_left_fails() {
        let mut ledger = Ledger::default();
        buy(&mut ledger, ga(1));
        ledger.record(
            &Effect::Buy { tickets: ga(1) },
            409,
            None,
            Some("sold_out"),
            None,
        );
        let verdict = verify(&plan(false, 4), &ledger, &section(4, 3, 0, 1));
        assert!(verdict.failures.iter().any(|f| f.contains("sold_out")));
    }

    fn seated(map: &[(&str, SeatStatus)], held: u64, sold: u64) -> Observed {
        let mut observed = section(map.len() as u64, map.len() as u64 - held - sold, held, sold);
        observed.sections[0].seats = Some(map.iter().map(|(s, st)| (s.to_string(), *st)).collect());
        observed
    }

    #[test]
    fn a_seat_sold_twice_fails() {
        let mut ledger = Ledger::default();
        buy(&mut ledger, seats(&["A-1", "A-2"]));
        buy(&mut ledger, seats(&["A-2"]));
        let map = [
            ("A-1", SeatStatus::Sold),
            ("A-2", SeatStatus::Sold),
            ("A-3", SeatStatus::Free),
        ];
        let verdict = verify(&plan(true, 3), &ledger, &seated(&map, 0, 2));
        assert!(
            verdict
                .failures
                .iter()
                .any(|f| f.contains("seat A-2 of s: sold twice")),
            "{:?}",
            verdict.failures
        );
    }

    #[test]
    fn a_consistent_seat_map_passes_and_a_wrong_one_fails() {
        let mut ledger = Ledger::default();
        buy(&mut ledger, seats(&["A-1"]));
        hold(&mut ledger, "h-0-1", seats(&["A-2"]));
        hold(&mut ledger, "h-0-2", seats(&["A-3"]));
        let release = Effect::Release {
            hold_id: "h-0-2".into(),
        };
        ledger.record(&release, 200, None, None, None);
        let good = [
            ("A-1", SeatStatus::Sold),
            ("A-2", SeatStatus::Held),
            ("A-3", SeatStatus::Free),
        ];
        let verdict = verify(&plan(true, 3), &ledger, &seated(&good, 1, 1));
        assert!(verdict.passed, "{:?}", verdict.failures);
        let bad = [
            ("A-1", SeatStatus::Sold),
            ("A-2", SeatStatus::Free),
            ("A-3", SeatStatus::Held),
        ];
        let verdict = verify(&plan(true, 3), &ledger, &seated(&bad, 1, 1));
        assert!(!verdict.passed);
        assert!(verdict.failures.iter().any(|f| f.contains("seat A-2")));
        assert!(verdict.failures.iter().any(|f| f.contains("never given")));
    }

    /// A waitlist fact at `t` ms after `t0`, answered 1 ms later.
    fn fact(t0: Instant, t: u64, user: &str, what: WaitOp, status: u16) -> Effect {
        let sent = t0 + std::time::Duration::from_millis(t);
        Effect::Wait(WaitFact {
            what,
            user: user.into(),
            sent,
            answered: sent + std::time::Duration::from_millis(1),
            outcome: Outcome::of_status(status),
        })
    }

    fn entry(
        id: &str,
        user: &str,
        status: &str,
        position: Option<u64>,
        hold: Option<&str>,
    ) -> ObservedEntry {
        ObservedEntry {
            id: id.into(),
            user_id: user.into(),
            section_id: "s".into(),
            qty: 1,
            status: status.into(),
            position,
            hold_id: hold.map(str::to_string),
            created_at: format!("2026-12-01T00:00:0{}Z", counter_of(id)),
        }
    }

    /// A sold-out section of 2: `a` and `b` bought, `w1` and `w2` joined, `a` cancelled
    /// (its ticket offered to `w1`, who confirmed), `w2` still waits.
    fn waitlist_run(t0: Instant) -> (Ledger, Observed) {
        let mut ledger = Ledger::default();
        let buy = |b: &str| WaitOp::Buy {
            qty: 1,
            booking: Some(b.into()),
        };
        let join = |e: &str| WaitOp::Join {
            qty: 1,
            entry: Some(e.into()),
        };
        let poll = |e: &str, status: &str, hold: Option<&str>| WaitOp::Poll {
            entry: e.into(),
            status: Some(status.into()),
            hold: hold.map(str::to_string),
        };
        for effect in [
            fact(t0, 0, "a", buy("b-0-1"), 201),
            fact(t0, 2, "b", buy("b-0-2"), 201),
            fact(
                t0,
                4,
                "c",
                WaitOp::Buy {
                    qty: 1,
                    booking: None,
                },
                409,
            ),
            fact(t0, 6, "w1", join("w-0-1"), 201),
            fact(t0, 8, "w2", join("w-0-2"), 201),
            fact(t0, 10, "w1", poll("w-0-1", "waiting", None), 200),
            fact(
                t0,
                12,
                "a",
                WaitOp::Cancel {
                    booking: "b-0-1".into(),
                },
                200,
            ),
            fact(t0, 14, "w1", poll("w-0-1", "offered", Some("h-0-3")), 200),
            fact(
                t0,
                16,
                "w1",
                WaitOp::ConfirmOffer {
                    entry: "w-0-1".into(),
                    hold: "h-0-3".into(),
                    booking: Some(("b-0-3".into(), "w1".into(), "h-0-3".into())),
                },
                201,
            ),
            fact(t0, 18, "w2", poll("w-0-2", "waiting", None), 200),
        ] {
            ledger.record(&effect, 200, None, None, None);
        }
        let mut observed = section(2, 0, 0, 2);
        observed.sections[0].waiting = Some(1);
        observed.sections[0].set_aside = Some(0);
        observed.entries = vec![
            entry("w-0-1", "w1", "accepted", None, Some("h-0-3")),
            entry("w-0-2", "w2", "waiting", Some(1), None),
        ];
        (ledger, observed)
    }

    fn waitlist_plan() -> EventPlan {
        let mut plan = plan(false, 2);
        plan.sections[0].returns = true;
        plan
    }

    #[test]
    fn times_sort_in_time_order_whatever_their_fraction() {
        assert!(time_key("2026-12-01T20:55:01.25Z") > time_key("2026-12-01T20:55:01Z"));
        assert!(time_key("2026-12-01T20:55:01.25Z") < time_key("2026-12-01T20:55:01.3Z"));
        assert!(time_key("2026-12-01T20:55:02Z") > time_key("2026-12-01T20:55:01.999Z"));
    }

    #[test]
    fn a_consistent_waitlist_run_passes() {
        let (ledger, observed) = waitlist_run(Instant::now());
        assert_eq!(ledger.entry_ids(), ["w-0-1", "w-0-2"]);
        let verdict = verify(&waitlist_plan(), &ledger, &observed);
        assert!(verdict.passed, "{:?}", verdict.failures);
        assert_eq!(verdict.acknowledged, 3);
    }

    #[test]
    fn a_public_purchase_while_an_entry_waits_fails() {
        let t0 = Instant::now();
        let (mut ledger, mut observed) = waitlist_run(t0);
        // The ticket `b` cancels is sold to the public while w-0-2 waits.
        let cancel = fact(
            t0,
            20,
            "b",
            WaitOp::Cancel {
                booking: "b-0-2".into(),
            },
            200,
        );
        let buy = fact(
            t0,
            22,
            "d",
            WaitOp::Buy {
                qty: 1,
                booking: Some("b-0-4".into()),
            },
            201,
        );
        ledger.record(&cancel, 200, None, None, None);
        ledger.record(&buy, 201, None, None, None);
        observed.sections[0].sold = 2;
        let verdict = verify(&waitlist_plan(), &ledger, &observed);
        assert!(
            verdict.failures.iter().any(
                |f| f.contains("booking b-0-4 was sold to the public while entry w-0-2 waited")
            ),
            "{:?}",
            verdict.failures
        );
    }

    #[test]
    fn an_offer_out_of_join_order_or_to_another_user_fails() {
        let (ledger, mut observed) = waitlist_run(Instant::now());
        // The later entry holds the offer and the earlier one still waits.
        observed.entries = vec![
            entry("w-0-1", "w1", "waiting", Some(1), None),
            entry("w-0-2", "w2", "accepted", None, Some("h-0-3")),
        ];
        let verdict = verify(&waitlist_plan(), &ledger, &observed);
        let failures = verdict.failures.join("\n");
        assert!(
            failures.contains("entry w-0-2 was offered h-0-3 while w-0-1"),
            "{failures}"
        );
        assert!(
            failures.contains("entry w-0-1: its offer h-0-3 was confirmed"),
            "{failures}"
        );
        // An offer confirmed as another user's booking.
        let (mut ledger, observed) = waitlist_run(Instant::now());
        for f in &mut ledger.wait {
            if let WaitOp::ConfirmOffer {
                booking: Some(b), ..
            } = &mut f.what
            {
                b.1 = "intruder".into();
            }
        }
        let verdict = verify(&waitlist_plan(), &ledger, &observed);
        assert!(
            verdict
                .failures
                .iter()
                .any(|f| f.contains("offer h-0-3 of entry w-0-1")),
            "{:?}",
            verdict.failures
        );
    }

    #[test]
    fn waitlist_counts_that_do_not_add_up_fail() {
        let (ledger, mut observed) = waitlist_run(Instant::now());
        // Held by nothing the entries explain, and one more sold than told.
        observed.sections[0].held = 1;
        observed.sections[0].sold = 1;
        let verdict = verify(&waitlist_plan(), &ledger, &observed);
        let failures = verdict.failures.join("\n");
        assert!(failures.contains("held 1 is not set_aside 0"), "{failures}");
        assert!(failures.contains("server says sold 1"), "{failures}");
    }

    #[test]
    fn expiring_holds_are_not_counted_as_held() {
        let mut ledger = Ledger::default();
        let effect = Effect::Place {
            tickets: ga(2),
            expiring: true,
        };
        ledger.record(
            &effect,
            201,
            Some("h-0-9".into()),
            None,
            Some(Instant::now()),
        );
        assert!(ledger.expiring_until().is_some());
        assert!(verify(&plan(false, 4), &ledger, &section(4, 4, 0, 0)).passed);
        assert!(!verify(&plan(false, 4), &ledger, &section(4, 2, 2, 0)).passed);
    }
}
