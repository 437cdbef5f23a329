//! What the crowd does: the events a run creates and, per connection, the seeded sequence
//! of requests it sends.
//!
//! A workload knows nothing of sockets or clocks. Each connection owns a [`Script`] built
//! from the run's seed and the connection's index, so the same seed sends the same
//! requests (the interleaving across connections is the server's business). A script that
//! needs an answer (the hold id to confirm) learns it through [`Script::observe`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use super::client::Method;

/// The default `--seed`: runs are reproducible unless asked otherwise.
pub const DEFAULT_SEED: u64 = 0x0b0c_5eed;

/// Seats per row of the seat-map event (the last row may be shorter).
pub const SEATS_PER_ROW: u32 = 500;

/// TTL of the lifecycle holds that are left to expire: short, so that verification sees
/// them expired after a wait of a few seconds.
pub const EXPIRING_TTL_SECONDS: u64 = 1;

/// The workloads of `--workload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Everyone buys from one general-admission section: the sale-opening race.
    HotSection,
    /// Random 1 to 4 adjacent seats on a large seated event.
    SeatMap,
    /// Hold, browse, then confirm (60 %), release (25 %) or let expire (15 %).
    Lifecycle,
    /// N buyers for C tickets, one ticket each, until every buyer has tried once.
    Sellout,
    /// 1 to 4 seats picked by the server (`best_available`) on a large seated event.
    BestAvailable,
    /// Buy a small section until it is sold out, then join its waiting list; cancel
    /// bookings (which feeds offers to waiting entries) and confirm the offers.
    Waitlist,
}

impl WorkloadKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::HotSection => "hot-section",
            WorkloadKind::SeatMap => "seat-map",
            WorkloadKind::Lifecycle => "lifecycle",
            WorkloadKind::Sellout => "sellout",
            WorkloadKind::BestAvailable => "best-available",
            WorkloadKind::Waitlist => "waitlist",
        }
    }
}

/// How a buyer takes tickets in hot-section, seat-map and sellout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `POST /v1/events/{id}/holds` (the hold stays live for the event's TTL).
    Hold,
    /// `POST /v1/events/{id}/bookings` (hold and confirm as one decision).
    Purchase,
}

/// The kinds of request, each with its own latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Place a hold.
    Hold,
    /// Buy at once.
    Purchase,
    /// Confirm a hold into a booking.
    Confirm,
    /// Release a hold.
    Release,
    /// Read an event with its counts.
    GetEvent,
    /// Read an event's seat map.
    GetSeats,
    /// Read a hold.
    GetHold,
    /// Cancel a booking.
    Cancel,
    /// Join a waiting list.
    Join,
    /// Read a waiting-list entry.
    GetEntry,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 10] = [
        Kind::Hold,
        Kind::Purchase,
        Kind::Confirm,
        Kind::Release,
        Kind::GetEvent,
        Kind::GetSeats,
        Kind::GetHold,
        Kind::Cancel,
        Kind::Join,
        Kind::GetEntry,
    ];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hold => "hold",
            Kind::Purchase => "purchase",
            Kind::Confirm => "confirm",
            Kind::Release => "release",
            Kind::GetEvent => "get_event",
            Kind::GetSeats => "get_seats",
            Kind::GetHold => "get_hold",
            Kind::Cancel => "cancel",
            Kind::Join => "join",
            Kind::GetEntry => "get_entry",
        }
    }

    /// The index into per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How an answer bears on the state: changed as asked, unchanged, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Done,
    /// A 4xx or 503 answer: refused, nothing changed.
    Refused,
    /// No answer, or a 5xx other than 503.
    Unknown,
}

impl Outcome {
    /// Classifies an HTTP status (0: no answer).
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Done,
            400..=499 | 503 => Outcome::Refused,
            _ => Outcome::Unknown,
        }
    }
}

/// Tickets a request asks for: GA quantities and named seats, by section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tickets {
    /// `(section id, qty)` of general-admission lines.
    pub items: Vec<(String, u32)>,
    /// `(section id, seat id)` of named seats.
    pub seats: Vec<(String, String)>,
}

impl Tickets {
    /// Tickets in all.
    pub fn count(&self) -> u64 {
        self.items.iter().map(|(_, q)| u64::from(*q)).sum::<u64>() + self.seats.len() as u64
    }
}

/// What a request would change if it succeeds; the ledger of the verification keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A read.
    None,
    /// A hold; `expiring` holds are left to expire and are not counted as held.
    Place { tickets: Tickets, expiring: bool },
    /// A direct purchase.
    Buy { tickets: Tickets },
    /// Confirm the hold of this id.
    Confirm { hold_id: String },
    /// Release the hold of this id.
    Release { hold_id: String },
    /// A waiting-list workload request, with what its answer said
    /// ([`Script::resolve`] fills it in).
    Wait(WaitFact),
}

/// What a request of the waitlist workload did, as its answer told it, with when it was
/// sent and answered (the ledger orders purchases and waiting entries by these times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitFact {
    /// What it was.
    pub what: WaitOp,
    /// The user it acted for.
    pub user: String,
    /// When it was sent.
    pub sent: Instant,
    /// When its answer was read (`sent` until it is resolved).
    pub answered: Instant,
    /// Its outcome.
    pub outcome: Outcome,
}

/// The requests of the waitlist workload, with the ids their answers named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOp {
    /// A public purchase of `qty` tickets; `booking` from a 2xx answer.
    Buy { qty: u32, booking: Option<String> },
    /// A join of the waiting list for `qty`; `entry` from a 2xx answer.
    Join { qty: u32, entry: Option<String> },
    /// A read of an entry: its `status` and `hold_id` as answered.
    Poll {
        entry: String,
        status: Option<String>,
        hold: Option<String>,
    },
    /// A cancellation of a booking the run bought or confirmed.
    Cancel { booking: String },
    /// A confirmation of an entry's offer (`hold`); from a 2xx answer the booking's id,
    /// user and hold.
    ConfirmOffer {
        entry: String,
        hold: String,
        booking: Option<(String, String, String)>,
    },
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Op {
    /// Its histogram.
    pub kind: Kind,
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<Bytes>,
    /// The user it acts for (used to pick a token in `--auth user`).
    pub user: String,
    /// What it changes.
    pub effect: Effect,
}

/// The parameters of a workload, from the command line.
#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    /// Which workload.
    pub kind: WorkloadKind,
    /// Hold or purchase (hot-section, seat-map, sellout).
    pub action: Action,
    /// Prefix of the event ids this run creates (unique per run).
    pub event_prefix: String,
    /// Tickets per request in hot-section.
    pub qty: u32,
    /// Distinct users (hot-section, seat-map, lifecycle).
    pub users: u32,
    /// Capacity of the hot section.
    pub capacity: u32,
    /// Seats of the seat-map event.
    pub seats: u32,
    /// Buyers in sellout.
    pub buyers: u64,
    /// Tickets in sellout.
    pub tickets: u32,
    /// The run's seed.
    pub seed: u64,
}

/// A section as the workload created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionPlan {
    /// Section id.
    pub id: String,
    /// Capacity (seats for a seated section).
    pub capacity: u64,
    /// Whether it has a seat map.
    pub seated: bool,
    /// Whether tickets can come back to sale during the run (release, expiry).
    pub returns: bool,
}

/// An event the workload creates before the run.
#[derive(Debug, Clone)]
pub struct EventPlan {
    /// Event id.
    pub id: String,
    /// The `POST /v1/events` body.
    pub body: Value,
    /// Its sections.
    pub sections: Vec<SectionPlan>,
}

/// Rows `(label, count)` of a seated section of `seats` seats.
pub fn seat_rows(seats: u32) -> Vec<(String, u32)> {
    let mut rows = Vec::new();
    let mut left = seats;
    while left > 0 {
        let count = left.min(SEATS_PER_ROW);
        rows.push((format!("R{}", rows.len() + 1), count));
        left -= count;
    }
    rows
}

fn seated_json(id: &str, name: &str, seats: u32) -> Value {
    let rows: Vec<Value> = seat_rows(seats)
        .into_iter()
        .map(|(label, count)| json!({"label": label, "count": count}))
        .collect();
    json!({"id": id, "name": name, "price_cents": 5000, "seats": {"rows": rows}})
}

fn ga_json(id: &str, name: &str, capacity: u32) -> Value {
    json!({"id": id, "name": name, "price_cents": 2500, "capacity": capacity})
}

/// Seats of the lifecycle event's seated section.
const LIFECYCLE_SEATS: u32 = 10_000;

impl Spec {
    /// The id of the one event of this run.
    pub fn event_id(&self) -> String {
        format!("{}-{}", self.event_prefix, self.kind.name())
    }

    /// The event this workload creates.
    pub fn event(&self) -> EventPlan {
        let id = self.event_id();
        let (sections, plans) = match self.kind {
            WorkloadKind::HotSection => (
                vec![ga_json("ga", "General admission", self.capacity)],
                vec![plan("ga", self.capacity.into(), false, false)],
            ),
            WorkloadKind::SeatMap | WorkloadKind::BestAvailable => (
                vec![seated_json("floor", "Floor", self.seats)],
                vec![plan("floor", self.seats.into(), true, false)],
            ),
            WorkloadKind::Lifecycle => (
                vec![
                    ga_json("ga1", "Lawn", self.capacity),
                    ga_json("ga2", "Standing", self.capacity),
                    seated_json("floor", "Floor", LIFECYCLE_SEATS),
                ],
                vec![
                    plan("ga1", self.capacity.into(), false, true),
                    plan("ga2", self.capacity.into(), false, true),
                    plan("floor", LIFECYCLE_SEATS.into(), true, true),
                ],
            ),
            WorkloadKind::Sellout => (
                vec![ga_json("ga", "General admission", self.tickets)],
                vec![plan("ga", self.tickets.into(), false, false)],
            ),
            WorkloadKind::Waitlist => (
                vec![ga_json("ga", "General admission", self.tickets)],
                vec![plan("ga", self.tickets.into(), false, true)],
            ),
        };
        let mut body = json!({"id": id, "name": format!("boxoffice-load {}", self.kind.name()),
            "sections": sections});
        if self.kind == WorkloadKind::Sellout {
            body["max_per_user"] = json!(1);
        }
        if self.kind == WorkloadKind::Waitlist {
            // Offers outlive the run: every offer is confirmed or still outstanding at
            // the end, so the verification knows each entry's fate.
            body["offer_ttl_seconds"] = json!(WAITLIST_OFFER_TTL_SECONDS);
        }
        EventPlan {
            id,
            body,
            sections: plans,
        }
    }

    /// Whether scripts act on the holds they place (then the run keeps every hold's id).
    pub fn follows_up(&self) -> bool {
        self.kind == WorkloadKind::Lifecycle
    }

    /// The kind whose throughput and p99 the report compares with the ceiling.
    pub fn primary_kind(&self) -> Kind {
        match (self.kind, self.action) {
            (WorkloadKind::Lifecycle, _) | (_, Action::Hold) => Kind::Hold,
            (WorkloadKind::Waitlist, _) => Kind::Cancel,
            (_, Action::Purchase) => Kind::Purchase,
        }
    }

    /// The script of connection `worker`; `sellout` is the shared count of buyers taken.
    pub fn script(&self, worker: usize, sellout: Arc<AtomicU64>) -> Script {
        let seed = self
            .seed
            .wrapping_add((worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        Script {
            spec: self.clone(),
            event_id: self.event_id(),
            rng: StdRng::seed_from_u64(seed),
            life: Life::Start,
            sellout,
            wait: WaitScript {
                worker,
                session: 0,
                at: WaitAt::Buy,
                bookings: Vec::new(),
                sent: Instant::now(),
            },
        }
    }
}

fn plan(id: &str, capacity: u64, seated: bool, returns: bool) -> SectionPlan {
    SectionPlan {
        id: id.to_string(),
        capacity,
        seated,
        returns,
    }
}

/// Where a lifecycle session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Life {
    /// About to browse or hold.
    Start,
    /// The hold request is out.
    Placing { fate: Fate },
    /// Holding `hold_id`; `browse` reads left before the fate.
    Holding {
        hold_id: String,
        user: String,
        browse: u8,
        fate: Fate,
    },
}

/// What a lifecycle session does with its hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Confirm,
    Release,
    Expire,
}

/// The request sequence of one connection.
#[derive(Debug)]
pub struct Script {
    spec: Spec,
    event_id: String,
    rng: StdRng,
    life: Life,
    sellout: Arc<AtomicU64>,
    wait: WaitScript,
}

/// Where a waitlist connection stands. Each session is a new user (a user has one live
/// entry per event): it buys, joins when sold out, waits for its offer and confirms it.
#[derive(Debug)]
struct WaitScript {
    worker: usize,
    session: u64,
    at: WaitAt,
    /// Bookings this connection holds (bought or confirmed) and their users: it may
    /// cancel them, acting for their users.
    bookings: Vec<(String, String)>,
    /// When the last request went out.
    sent: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WaitAt {
    /// About to buy.
    Buy,
    /// Sold out: about to join.
    Join,
    /// Waiting as `entry`: poll it, or cancel a booking meanwhile.
    Waiting { entry: String },
    /// Offered `hold`: confirm it.
    Confirm { entry: String, hold: String },
}

/// TTL of the waitlist workload's offers: longer than any run.
pub const WAITLIST_OFFER_TTL_SECONDS: u64 = 86_400;

/// Share of a waiting connection's requests that cancel one of its bookings (the rest
/// poll its entry).
const WAITLIST_CANCEL_SHARE: f64 = 0.3;

/// The part of an answer a script needs.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// HTTP status (0 when no answer came).
    pub status: u16,
    /// Body.
    pub body: &'a [u8],
}

impl Script {
    /// The next request, or `None` when this workload has nothing more to send.
    pub fn next_op(&mut self) -> Option<Op> {
        match self.spec.kind {
            WorkloadKind::HotSection => {
                let user = self.user();
                let tickets = Tickets {
                    items: vec![("ga".to_string(), self.spec.qty)],
                    seats: vec![],
                };
                Some(self.take(user, tickets, self.spec.action))
            }
            WorkloadKind::SeatMap => {
                let user = self.user();
                let tickets = self.adjacent_seats("floor", self.spec.seats);
                Some(self.take(user, tickets, self.spec.action))
            }
            WorkloadKind::Sellout => {
                let buyer = self.sellout.fetch_add(1, Ordering::Relaxed);
                if buyer >= self.spec.buyers {
                    return None;
                }
                let tickets = Tickets {
                    items: vec![("ga".to_string(), 1)],
                    seats: vec![],
                };
                Some(self.take(format!("b{buyer}"), tickets, self.spec.action))
            }
            WorkloadKind::Lifecycle => Some(self.lifecycle_op()),
            WorkloadKind::BestAvailable => {
                let user = self.user();
                let qty = self.rng.random_range(1..=4u32);
                Some(self.best(user, qty))
            }
            WorkloadKind::Waitlist => Some(self.waitlist_op()),
        }
    }

    fn wait_user(&self) -> String {
        format!("q{}-{}", self.wait.worker, self.wait.session)
    }

    fn waitlist_op(&mut self) -> Op {
        let user = self.wait_user();
        let now = Instant::now();
        self.wait.sent = now;
        match self.wait.at.clone() {
            WaitAt::Buy => Op {
                kind: Kind::Purchase,
                method: Method::Post,
                path: format!("/v1/events/{}/bookings", self.event_id),
                body: Some(Bytes::from(format!(
                    r#"{{"user_id":"{user}","items":[{{"section_id":"ga","qty":1}}]}}"#
                ))),
                effect: wait_effect(
                    WaitOp::Buy {
                        qty: 1,
                        booking: None,
                    },
                    &user,
                    now,
                ),
                user,
            },
            WaitAt::Join => Op {
                kind: Kind::Join,
                method: Method::Post,
                path: format!("/v1/events/{}/waitlist", self.event_id),
                body: Some(Bytes::from(format!(
                    r#"{{"user_id":"{user}","section_id":"ga","qty":1}}"#
                ))),
                effect: wait_effect(
                    WaitOp::Join {
                        qty: 1,
                        entry: None,
                    },
                    &user,
                    now,
                ),
                user,
            },
            WaitAt::Waiting { entry } => self.while_waiting(entry, user, now),
            WaitAt::Confirm { entry, hold } => {
                let effect = wait_effect(
                    WaitOp::ConfirmOffer {
                        entry,
                        hold: hold.clone(),
                        booking: None,
                    },
                    &user,
                    now,
                );
                confirm(&hold, user, effect)
            }
        }
    }

    /// A waiting connection's request: now and then the cancellation of one of its
    /// bookings (for the booking's user), else a read of its entry.
    fn while_waiting(&mut self, entry: String, user: String, now: Instant) -> Op {
        if !self.wait.bookings.is_empty() && self.rng.random_bool(WAITLIST_CANCEL_SHARE) {
            let n = self.rng.random_range(0..self.wait.bookings.len());
            let (booking, owner) = self.wait.bookings.swap_remove(n);
            return Op {
                kind: Kind::Cancel,
                method: Method::Post,
                path: format!("/v1/bookings/{booking}/cancel"),
                body: None,
                effect: wait_effect(WaitOp::Cancel { booking }, &owner, now),
                user: owner,
            };
        }
        Op {
            kind: Kind::GetEntry,
            method: Method::Get,
            path: format!("/v1/waitlist/{entry}"),
            body: None,
            effect: wait_effect(
                WaitOp::Poll {
                    entry,
                    status: None,
                    hold: None,
                },
                &user,
                now,
            ),
            user,
        }
    }

    /// A waitlist op's fact completed with its answer.
    fn resolve_wait(fact: &WaitFact, answer: Answer<'_>) -> Effect {
        let body: Value = serde_json::from_slice(answer.body).unwrap_or(Value::Null);
        let text = |field: &str| body[field].as_str().map(str::to_string);
        let outcome = Outcome::of_status(answer.status);
        let ok = outcome == Outcome::Done;
        let what = match &fact.what {
            WaitOp::Buy { qty, .. } => WaitOp::Buy {
                qty: *qty,
                booking: text("id").filter(|_| ok),
            },
            WaitOp::Join { qty, .. } => WaitOp::Join {
                qty: *qty,
                entry: text("id").filter(|_| ok),
            },
            WaitOp::Poll { entry, .. } => WaitOp::Poll {
                entry: entry.clone(),
                status: text("status").filter(|_| ok),
                hold: text("hold_id").filter(|_| ok),
            },
            WaitOp::Cancel { booking } => WaitOp::Cancel {
                booking: booking.clone(),
            },
            WaitOp::ConfirmOffer { entry, hold, .. } => WaitOp::ConfirmOffer {
                entry: entry.clone(),
                hold: hold.clone(),
                booking: match (ok, text("id"), text("user_id"), text("hold_id")) {
                    (true, Some(id), Some(user), Some(hold)) => Some((id, user, hold)),
                    _ => None,
                },
            },
        };
        Effect::Wait(WaitFact {
            what,
            user: fact.user.clone(),
            sent: fact.sent,
            answered: Instant::now(),
            outcome,
        })
    }

    /// The waitlist connection's next step after the answer `effect` (resolved).
    fn observe_wait(&mut self, effect: &Effect, code: Option<&str>) {
        let Effect::Wait(fact) = effect else { return };
        let next_session = |w: &mut WaitScript| {
            w.session += 1;
            WaitAt::Buy
        };
        let ok = fact.outcome == Outcome::Done;
        self.wait.at = match (&fact.what, ok) {
            (WaitOp::Buy { booking, .. }, true) => {
                self.wait
                    .bookings
                    .extend(booking.clone().map(|b| (b, fact.user.clone())));
                next_session(&mut self.wait)
            }
            (WaitOp::Buy { .. }, false) if code == Some("sold_out") => WaitAt::Join,
            (
                WaitOp::Join {
                    entry: Some(entry), ..
                },
                true,
            ) => WaitAt::Waiting {
                entry: entry.clone(),
            },
            // Tickets came back on sale meanwhile: buy them.
            (WaitOp::Join { .. }, false) if code == Some("tickets_available") => WaitAt::Buy,
            (
                WaitOp::Poll {
                    entry,
                    status,
                    hold,
                },
                true,
            ) => match (status.as_deref(), hold) {
                (Some("waiting"), _) => WaitAt::Waiting {
                    entry: entry.clone(),
                },
                (Some("offered"), Some(hold)) => WaitAt::Confirm {
                    entry: entry.clone(),
                    hold: hold.clone(),
                },
                _ => next_session(&mut self.wait),
            },
            // A cancel (whatever its answer) goes back to waiting.
            (WaitOp::Cancel { .. }, _) => self.wait.at.clone(),
            (WaitOp::ConfirmOffer { booking, .. }, true) => {
                self.wait.bookings.extend(
                    booking
                        .as_ref()
                        .map(|(id, _, _)| (id.clone(), fact.user.clone())),
                );
                next_session(&mut self.wait)
            }
            // An unknown or refused confirm: read the entry again.
            (WaitOp::ConfirmOffer { entry, .. }, false) if fact.outcome == Outcome::Unknown => {
                WaitAt::Waiting {
                    entry: entry.clone(),
                }
            }
            // Anything else (a refusal, no answer): a new user starts over.
            _ => next_session(&mut self.wait),
        };
    }

    /// A best-available hold or purchase of `qty` seats of the floor. The seats are the
    /// server's choice: the op's tickets hold `qty` placeholders (`?`), which
    /// [`Script::resolve`] replaces with the seats of the answer.
    fn best(&self, user: String, qty: u32) -> Op {
        let placeholders = Tickets {
            items: vec![],
            seats: (0..qty)
                .map(|_| ("floor".to_string(), "?".to_string()))
                .collect(),
        };
        let mut op = self.take(user.clone(), placeholders, self.spec.action);
        op.body = Some(Bytes::from(format!(
            r#"{{"user_id":"{user}","best_available":{{"section_id":"floor","qty":{qty}}}}}"#
        )));
        op
    }

    /// The effect of `op` as its answer tells it: a best-available success names its seats
    /// (the ledger verifies them like named ones); anything else is the op's own effect.
    pub fn resolve(&self, op: &Op, answer: Answer<'_>) -> Effect {
        if let Effect::Wait(fact) = &op.effect {
            return Self::resolve_wait(fact, answer);
        }
        if self.spec.kind != WorkloadKind::BestAvailable || !(200..300).contains(&answer.status) {
            return op.effect.clone();
        }
        #[derive(serde::Deserialize)]
        struct Seats {
            seats: Vec<String>,
        }
        let Ok(answer) = serde_json::from_slice::<Seats>(answer.body) else {
            return op.effect.clone();
        };
        let tickets = Tickets {
            items: vec![],
            seats: answer
                .seats
                .into_iter()
                .map(|seat| ("floor".to_string(), seat))
                .collect(),
        };
        match &op.effect {
            Effect::Place { expiring, .. } => Effect::Place {
                tickets,
                expiring: *expiring,
            },
            Effect::Buy { .. } => Effect::Buy { tickets },
            other => other.clone(),
        }
    }

    /// Learns from the answer to `op` (the lifecycle needs its hold ids).
    pub fn observe(&mut self, op: &Op, answer: Answer<'_>) {
        if let Effect::Wait(fact) = &op.effect {
            let effect = Self::resolve_wait(fact, answer);
            let code = (answer.status >= 400).then(|| super::client::error_code(answer.body));
            self.observe_wait(&effect, code.as_deref());
            return;
        }
        if self.spec.kind != WorkloadKind::Lifecycle {
            return;
        }
        let life = std::mem::replace(&mut self.life, Life::Start);
        self.life = match (life, &op.effect) {
            (Life::Placing { fate }, Effect::Place { .. }) => match hold_id(answer) {
                Some(hold_id) => Life::Holding {
                    hold_id,
                    user: op.user.clone(),
                    browse: self.rng.random_range(0..=2),
                    fate,
                },
                None => Life::Start,
            },
            (Life::Holding { .. }, Effect::Confirm { .. } | Effect::Release { .. }) => Life::Start,
            (life, _) => life,
        };
    }

    fn user(&mut self) -> String {
        format!("u{}", self.rng.random_range(0..self.spec.users.max(1)))
    }

    fn adjacent_seats(&mut self, section: &str, seats: u32) -> Tickets {
        let rows = seat_rows(seats);
        let (label, count) = &rows[self.rng.random_range(0..rows.len())];
        let want = self.rng.random_range(1..=4).min(*count);
        let first = self.rng.random_range(1..=count - want + 1);
        Tickets {
            items: vec![],
            seats: (first..first + want)
                .map(|n| (section.to_string(), format!("{label}-{n}")))
                .collect(),
        }
    }

    fn take(&self, user: String, tickets: Tickets, action: Action) -> Op {
        let body = ticket_body(&user, &tickets, None);
        let (kind, path, effect) = match action {
            Action::Hold => (
                Kind::Hold,
                format!("/v1/events/{}/holds", self.event_id),
                Effect::Place {
                    tickets,
                    expiring: false,
                },
            ),
            Action::Purchase => (
                Kind::Purchase,
                format!("/v1/events/{}/bookings", self.event_id),
                Effect::Buy { tickets },
            ),
        };
        Op {
            kind,
            method: Method::Post,
            path,
            body: Some(body),
            user,
            effect,
        }
    }

    fn lifecycle_op(&mut self) -> Op {
        match self.life.clone() {
            Life::Start | Life::Placing { .. } => self.lifecycle_start(),
            Life::Holding {
                hold_id,
                user,
                browse,
                fate,
            } => {
                if browse > 0 || fate == Fate::Expire {
                    return self.browse_holding(hold_id, user, browse, fate);
                }
                match fate {
                    Fate::Confirm => {
                        let effect = Effect::Confirm {
                            hold_id: hold_id.clone(),
                        };
                        confirm(&hold_id, user, effect)
                    }
                    _ => Op {
                        kind: Kind::Release,
                        method: Method::Delete,
                        path: format!("/v1/holds/{hold_id}"),
                        body: None,
                        user,
                        effect: Effect::Release { hold_id },
                    },
                }
            }
        }
    }

    /// A new lifecycle session: a read of the event, or a hold whose fate it draws.
    fn lifecycle_start(&mut self) -> Op {
        let user = self.user();
        if self.rng.random_bool(0.3) {
            self.life = Life::Start;
            return self.read(
                Kind::GetEvent,
                format!("/v1/events/{}", self.event_id),
                user,
            );
        }
        let fate = match self.rng.random_range(0..100) {
            0..60 => Fate::Confirm,
            60..85 => Fate::Release,
            _ => Fate::Expire,
        };
        let tickets = if self.rng.random_bool(0.7) {
            let section = if self.rng.random_bool(0.5) {
                "ga1"
            } else {
                "ga2"
            };
            Tickets {
                items: vec![(section.to_string(), self.rng.random_range(1..=4))],
                seats: vec![],
            }
        } else {
            self.adjacent_seats("floor", LIFECYCLE_SEATS)
        };
        let expiring = fate == Fate::Expire;
        let ttl = expiring.then_some(EXPIRING_TTL_SECONDS);
        self.life = Life::Placing { fate };
        Op {
            kind: Kind::Hold,
            method: Method::Post,
            path: format!("/v1/events/{}/holds", self.event_id),
            body: Some(ticket_body(&user, &tickets, ttl)),
            user,
            effect: Effect::Place { tickets, expiring },
        }
    }

    /// A read while holding `hold_id` (its hold or the seat map), one of `browse` left.
    fn browse_holding(&mut self, hold_id: String, user: String, browse: u8, fate: Fate) -> Op {
        // An expiring hold is abandoned after one look; a new session starts.
        self.life = if fate == Fate::Expire {
            Life::Start
        } else {
            Life::Holding {
                hold_id: hold_id.clone(),
                user: user.clone(),
                browse: browse - 1,
                fate,
            }
        };
        if self.rng.random_bool(0.25) {
            self.read(
                Kind::GetSeats,
                format!("/v1/events/{}/seats", self.event_id),
                user,
            )
        } else {
            self.read(Kind::GetHold, format!("/v1/holds/{hold_id}"), user)
        }
    }

    fn read(&self, kind: Kind, path: String, user: String) -> Op {
        Op {
            kind,
            method: Method::Get,
            path,
            body: None,
            user,
            effect: Effect::None,
        }
    }
}

/// The effect of a waitlist request for `user` sent at `now`, its answer still to come.
fn wait_effect(what: WaitOp, user: &str, now: Instant) -> Effect {
    Effect::Wait(WaitFact {
        what,
        user: user.to_string(),
        sent: now,
        answered: now,
        outcome: Outcome::Unknown,
    })
}

/// The confirmation of hold `hold` for `user`.
fn confirm(hold: &str, user: String, effect: Effect) -> Op {
    Op {
        kind: Kind::Confirm,
        method: Method::Post,
        path: format!("/v1/holds/{hold}/confirm"),
        body: Some(Bytes::from_static(br#"{"payment_ref":"load-test"}"#)),
        user,
        effect,
    }
}

/// The id of a hold in a 201 answer.
pub fn hold_id(answer: Answer<'_>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    if !(200..300).contains(&answer.status) {
        return None;
    }
    serde_json::from_slice::<Id>(answer.body).ok().map(|h| h.id)
}

/// The JSON body of a hold or purchase. Written by hand, not through `serde_json::Value`:
/// it is on the generator's hot path, and every id in it is generated here from
/// `[A-Za-z0-9_-]`, so nothing needs escaping.
pub fn ticket_body(user: &str, tickets: &Tickets, ttl_seconds: Option<u64>) -> Bytes {
    use std::fmt::Write as _;
    let mut body = String::with_capacity(96);
    let _ = write!(body, r#"{{"user_id":"{user}""#);
    if !tickets.items.is_empty() {
        body.push_str(r#","items":["#);
        for (n, (section, qty)) in tickets.items.iter().enumerate() {
            let comma = if n > 0 { "," } else { "" };
            let _ = write!(body, r#"{comma}{{"section_id":"{section}","qty":{qty}}}"#);
        }
        body.push(']');
    }
    if !tickets.seats.is_empty() {
        body.push_str(r#","seats":["#);
        for (n, (_, seat)) in tickets.seats.iter().enumerate() {
            let comma = if n > 0 { "," } else { "" };
            let _ = write!(body, r#"{comma}"{seat}""#);
        }
        body.push(']');
    }
    if let Some(ttl) = ttl_seconds {
        let _ = write!(body, r#","ttl_seconds":{ttl}"#);
    }
    body.push('}');
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: WorkloadKind) -> Spec {
        Spec {
            kind,
            action: Action::Hold,
            event_prefix: "t".into(),
            qty: 1,
            users: 100,
            capacity: 1000,
            seats: 1234,
            buyers: 20,
            tickets: 5,
            seed: DEFAULT_SEED,
        }
    }

    fn ops(spec: &Spec, worker: usize, n: usize) -> Vec<(String, Option<Bytes>)> {
        let mut script = spec.script(worker, Arc::new(AtomicU64::new(0)));
        (0..n)
            .map_while(|_| script.next_op())
            .map(|op| (op.path, op.body))
            .collect()
    }

    #[test]
    fn same_seed_same_requests_other_worker_other_requests() {
        let s = spec(WorkloadKind::SeatMap);
        assert_eq!(ops(&s, 3, 50), ops(&s, 3, 50));
        assert_ne!(ops(&s, 3, 50), ops(&s, 4, 50));
        let mut other = s.clone();
        other.seed += 1;
        assert_ne!(ops(&s, 3, 50), ops(&other, 3, 50));
    }

    #[test]
    fn seat_map_takes_one_to_four_adjacent_seats_of_one_row() {
        let s = spec(WorkloadKind::SeatMap);
        let rows: std::collections::HashMap<String, u32> = seat_rows(s.seats).into_iter().collect();
        let mut script = s.script(0, Arc::new(AtomicU64::new(0)));
        for _ in 0..2000 {
            let op = script.next_op().unwrap();
            let Effect::Place { tickets, .. } = op.effect else {
                panic!()
            };
            assert!((1..=4).contains(&tickets.seats.len()));
            let parsed: Vec<(String, u32)> = tickets
                .seats
                .iter()
                .map(|(_, id)| {
                    let (row, n) = id.split_once('-').unwrap();
                    (row.to_string(), n.parse().unwrap())
                })
                .collect();
            for pair in parsed.windows(2) {
                assert_eq!(pair[0].0, pair[1].0);
                assert_eq!(pair[0].1 + 1, pair[1].1);
            }
            let (row, last) = parsed.last().unwrap();
            assert!(*last <= rows[row], "{last} past the end of row {row}");
        }
    }

    #[test]
    fn seat_rows_cover_every_seat() {
        let rows = seat_rows(1234);
        assert_eq!(rows.iter().map(|r| r.1).sum::<u32>(), 1234);
        assert_eq!(rows.last().unwrap(), &("R3".to_string(), 234));
    }

    #[test]
    fn sellout_gives_each_buyer_one_try_across_connections() {
        let s = spec(WorkloadKind::Sellout);
        let taken = Arc::new(AtomicU64::new(0));
        let mut a = s.script(0, taken.clone());
        let mut b = s.script(1, taken);
        let mut users = Vec::new();
        loop {
            match (a.next_op(), b.next_op()) {
                (None, None) => break,
                (x, y) => users.extend(x.into_iter().chain(y).map(|op| op.user)),
            }
        }
        users.sort();
        users.dedup();
        assert_eq!(users.len(), 20);
    }

    #[test]
    fn bodies_are_valid_json() {
        let tickets = Tickets {
            items: vec![("ga1".into(), 2), ("ga2".into(), 1)],
            seats: vec![("f".into(), "R1-1".into()), ("f".into(), "R1-2".into())],
        };
        let body: Value = serde_json::from_slice(&ticket_body("u1", &tickets, Some(1))).unwrap();
        let want = json!({"user_id": "u1", "items": [{"section_id": "ga1", "qty": 2},
            {"section_id": "ga2", "qty": 1}], "seats": ["R1-1", "R1-2"], "ttl_seconds": 1});
        assert_eq!(body, want);
    }

    #[test]
    fn best_available_asks_the_server_and_learns_the_seats_from_the_answer() {
        let s = spec(WorkloadKind::BestAvailable);
        let script = s.script(0, Arc::new(AtomicU64::new(0)));
        let mut script = script;
        let op = script.next_op().unwrap();
        let body: Value = serde_json::from_slice(op.body.as_ref().unwrap()).unwrap();
        let qty = body["best_available"]["qty"].as_u64().unwrap();
        assert!((1..=4).contains(&qty));
        assert_eq!(body["best_available"]["section_id"], "floor");
        assert_eq!(op.path, "/v1/events/t-best-available/holds");
        let answer = br#"{"id":"h-0-1","seats":["R1-7","R1-8"]}"#;
        let effect = script.resolve(
            &op,
            Answer {
                status: 201,
                body: answer,
            },
        );
        let Effect::Place { tickets, .. } = effect else {
            panic!("{effect:?}")
        };
        assert_eq!(
            tickets.seats,
            [
                ("floor".to_string(), "R1-7".to_string()),
                ("floor".to_string(), "R1-8".to_string())
            ]
        );
        // A refusal keeps the op's own effect (the ledger ignores refusals).
        assert_eq!(
            script.resolve(
                &op,
                Answer {
                    status: 409,
                    body: b"{}"
                }
            ),
            op.effect
        );
    }

    #[test]
    fn waitlist_buys_joins_when_sold_out_and_confirms_its_offer() {
        let s = spec(WorkloadKind::Waitlist);
        assert_eq!(
            s.event().body["offer_ttl_seconds"],
            WAITLIST_OFFER_TTL_SECONDS
        );
        let mut script = s.script(2, Arc::new(AtomicU64::new(0)));
        let step = |script: &mut Script, status: u16, body: &str| {
            let op = script.next_op().unwrap();
            let answer = Answer {
                status,
                body: body.as_bytes(),
            };
            let effect = script.resolve(&op, answer);
            script.observe(&op, answer);
            (op, effect)
        };
        let (buy, effect) = step(&mut script, 201, r#"{"id":"b-0-1"}"#);
        assert_eq!(buy.path, "/v1/events/t-waitlist/bookings");
        let Effect::Wait(WaitFact { what, outcome, .. }) = effect else {
            panic!("{effect:?}")
        };
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(
            what,
            WaitOp::Buy {
                qty: 1,
                booking: Some("b-0-1".into())
            }
        );
        let sold_out = r#"{"error":{"code":"sold_out","message":"none left"}}"#;
        let (again, _) = step(&mut script, 409, sold_out);
        assert_ne!(again.user, buy.user, "each session is a new user");
        let (join, _) = step(&mut script, 201, r#"{"id":"w-0-1","status":"waiting"}"#);
        assert_eq!(join.path, "/v1/events/t-waitlist/waitlist");
        assert_eq!(join.user, again.user);
        // Waiting: it polls its entry, or cancels the booking it bought (as its buyer).
        let mut cancelled = false;
        loop {
            let (op, _) = step(
                &mut script,
                200,
                r#"{"id":"w-0-1","status":"waiting","hold_id":null}"#,
            );
            match op.kind {
                Kind::GetEntry => assert_eq!(op.path, "/v1/waitlist/w-0-1"),
                Kind::Cancel => {
                    assert_eq!(op.path, "/v1/bookings/b-0-1/cancel");
                    assert_eq!(op.user, buy.user);
                    cancelled = true;
                }
                other => panic!("{other:?}"),
            }
            if cancelled {
                break;
            }
        }
        step(
            &mut script,
            200,
            r#"{"id":"w-0-1","status":"offered","hold_id":"h-0-9"}"#,
        );
        let (confirm, effect) = step(
            &mut script,
            201,
            &format!(
                r#"{{"id":"b-0-2","user_id":"{}","hold_id":"h-0-9"}}"#,
                join.user
            ),
        );
        assert_eq!(confirm.path, "/v1/holds/h-0-9/confirm");
        let Effect::Wait(WaitFact {
            what: WaitOp::ConfirmOffer { booking, .. },
            ..
        }) = effect
        else {
            panic!("{effect:?}")
        };
        assert_eq!(
            booking,
            Some(("b-0-2".into(), join.user.clone(), "h-0-9".into()))
        );
    }

    #[test]
    fn hot_section_body_is_the_contract_shape() {
        let s = spec(WorkloadKind::HotSection);
        let op = s.script(0, Arc::new(AtomicU64::new(0))).next_op().unwrap();
        let body: Value = serde_json::from_slice(op.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["items"], json!([{"section_id": "ga", "qty": 1}]));
        assert!(body["user_id"].as_str().unwrap().starts_with('u'));
        assert_eq!(op.path, "/v1/events/t-hot-section/holds");
    }

    #[test]
    fn lifecycle_confirms_or_releases_the_hold_it_placed() {
        let s = spec(WorkloadKind::Lifecycle);
        let mut script = s.script(0, Arc::new(AtomicU64::new(0)));
        let mut placed = 0;
        let mut finished = 0;
        for n in 0..5000 {
            let op = script.next_op().unwrap();
            let body = format!(r#"{{"id":"h-0-{n}"}}"#);
            if let Effect::Confirm { hold_id } | Effect::Release { hold_id } = &op.effect {
                assert_eq!(hold_id, &format!("h-0-{placed}"));
                finished += 1;
            }
            if matches!(op.effect, Effect::Place { .. }) {
                placed = n;
            }
            script.observe(
                &op,
                Answer {
                    status: 201,
                    body: body.as_bytes(),
                },
            );
        }
        assert!(finished > 500, "{finished}");
    }
}
