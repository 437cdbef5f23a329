//! The history checker of the cluster fault tests: every request a client sends is
//! recorded as invoked, then ok, failed or unknown, with its start and end times; unknown
//! outcomes are settled afterwards by retrying with the same `Idempotency-Key`. After a
//! heal the test reads every node's state ([`NodeState`]) and [`check`] compares the
//! history with it:
//!
//! 1. every acknowledged hold and booking exists on every node, with its seats and lines,
//!    in a status its later operations allow (a hold whose confirm was acknowledged is
//!    `confirmed`, one whose confirm was refused is not; a booking whose cancel was
//!    acknowledged is `cancelled`), and no booking exists that no request made;
//! 2. no seat is held or sold twice: neither in any node's state nor in the history (an
//!    owner acknowledged while another one was certainly still holding the seat);
//! 3. on every node available + held + sold == capacity per section, the seat map agrees
//!    with the counts, and the counts agree with the holds and bookings that are live;
//! 4. nodes with equal `applied` positions (every shard) have equal state;
//! 5. no read is older than a write acknowledged before the read began;
//! 6. no write is left unknown once the test has settled it.
//!
//! It knows nothing of HTTP or of processes: the tests fill [`History`] and [`NodeState`],
//! and the unit tests below feed it hand-made histories that break each rule. Holds in
//! these tests live far longer than a run (`ttl_seconds` 86,400), so `expired` is never an
//! allowed status.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

/// Microseconds since the history's epoch.
pub type Micros = u64;

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `POST /v1/events/{event}/holds`.
    Hold(Acquire),
    /// `POST /v1/events/{event}/bookings` (hold and confirm in one decision).
    Buy(Acquire),
    /// `POST /v1/holds/{hold}/confirm`.
    Confirm {
        /// The hold id.
        hold: String,
    },
    /// `DELETE /v1/holds/{hold}`.
    Release {
        /// The hold id.
        hold: String,
    },
    /// `POST /v1/bookings/{booking}/cancel`.
    Cancel {
        /// The booking id.
        booking: String,
    },
    /// `GET /v1/holds/{hold}`.
    ReadHold {
        /// The hold id.
        hold: String,
    },
    /// `GET /v1/bookings/{booking}`.
    ReadBooking {
        /// The booking id.
        booking: String,
    },
    /// `GET /v1/events/{event}/seats`.
    ReadSeats {
        /// The event id.
        event: String,
    },
}

impl Request {
    /// Whether the request changes state (and so must be settled when unknown).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Request::ReadHold { .. } | Request::ReadBooking { .. } | Request::ReadSeats { .. }
        )
    }
}

/// The body of a hold or a purchase.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acquire {
    /// The event id.
    pub event: String,
    /// The buyer.
    pub user: String,
    /// Seat ids (seated sections).
    pub seats: Vec<String>,
    /// General-admission lines: (section id, qty).
    pub items: Vec<(String, u64)>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Invoked, no answer yet.
    Pending,
    /// A 2xx answer with its body.
    Ok(Value),
    /// A definite refusal without effect: a 4xx, a 503 `unavailable`, or a connection
    /// that was refused before anything was sent.
    Failed {
        /// The status (0: nothing was sent).
        status: u16,
        /// The error code.
        code: String,
    },
    /// Sent, but the outcome is not known: a timeout, a broken connection, a 503
    /// `outcome_unknown`, another 5xx.
    Unknown {
        /// Why.
        why: String,
    },
}

impl Outcome {
    /// The outcome of an HTTP answer.
    pub fn of_answer(status: u16, body: &Value) -> Outcome {
        let code = body["error"]["code"].as_str().unwrap_or("").to_string();
        match status {
            200..=299 => Outcome::Ok(body.clone()),
            503 if code == "outcome_unknown" => Outcome::Unknown {
                why: "503 outcome_unknown".into(),
            },
            503 if code == "unavailable" || code == "overloaded" => {
                Outcome::Failed { status, code }
            }
            500..=599 => Outcome::Unknown {
                why: format!("{status} {code}"),
            },
            _ => Outcome::Failed { status, code },
        }
    }

    /// Whether this outcome is final (ok or failed).
    pub fn is_definite(&self) -> bool {
        matches!(self, Outcome::Ok(_) | Outcome::Failed { .. })
    }
}

/// One request of the history.
#[derive(Debug, Clone)]
pub struct Op {
    /// Its index in the history.
    pub id: usize,
    /// The client (thread) that sent it.
    pub client: usize,
    /// The node it was sent to.
    pub node: u64,
    /// What was asked.
    pub request: Request,
    /// The `Idempotency-Key` it carried (writes).
    pub key: Option<String>,
    /// When it was sent.
    pub start: Micros,
    /// When its answer (or failure) came; `Micros::MAX` while pending.
    pub end: Micros,
    /// The first answer.
    pub outcome: Outcome,
    /// For an unknown outcome: when a retry with the same key settled it, and how.
    pub settled: Option<(Micros, Outcome)>,
}

impl Op {
    /// The outcome after settling.
    pub fn effective(&self) -> &Outcome {
        match &self.settled {
            Some((_, outcome)) => outcome,
            None => &self.outcome,
        }
    }

    /// The latest moment its effect can have happened (the settling answer's time).
    pub fn effect_end(&self) -> Micros {
        match &self.settled {
            Some((end, _)) => *end,
            None => self.end,
        }
    }

    /// The acknowledged body, if the (settled) outcome is ok.
    pub fn ok(&self) -> Option<&Value> {
        match self.effective() {
            Outcome::Ok(body) => Some(body),
            _ => None,
        }
    }

    /// Whether the (settled) outcome is a definite refusal.
    pub fn failed(&self) -> bool {
        matches!(self.effective(), Outcome::Failed { .. })
    }

    /// Whether it may have had an effect (ok, unknown or pending).
    pub fn may_have_effect(&self) -> bool {
        !self.failed()
    }
}

/// The history: requests in the order they were invoked, recorded from many threads.
pub struct History {
    epoch: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> History {
        History {
            epoch: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Microseconds since the epoch.
    pub fn now(&self) -> Micros {
        self.epoch.elapsed().as_micros() as Micros
    }

    /// The moment `at` on this history's clock.
    pub fn at(&self, at: Instant) -> Micros {
        at.saturating_duration_since(self.epoch).as_micros() as Micros
    }

    /// Records a request as invoked now; returns its id.
    pub fn invoke(&self, client: usize, node: u64, request: Request, key: Option<String>) -> usize {
        let start = self.now();
        let mut ops = self.ops.lock().unwrap();
        let id = ops.len();
        ops.push(Op {
            id,
            client,
            node,
            request,
            key,
            start,
            end: Micros::MAX,
            outcome: Outcome::Pending,
            settled: None,
        });
        id
    }

    /// Records the answer of request `id` now.
    pub fn complete(&self, id: usize, outcome: Outcome) {
        let end = self.now();
        let mut ops = self.ops.lock().unwrap();
        ops[id].end = end;
        ops[id].outcome = outcome;
    }

    /// Records that a retry of the unknown request `id` settled it now.
    pub fn settle(&self, id: usize, outcome: Outcome) {
        let end = self.now();
        self.ops.lock().unwrap()[id].settled = Some((end, outcome));
    }

    /// Appends a whole operation (hand-made histories); its id is set to its index.
    pub fn push(&self, mut op: Op) -> usize {
        let mut ops = self.ops.lock().unwrap();
        op.id = ops.len();
        ops.push(op);
        ops.len() - 1
    }

    /// Runs `f` on the operations so far, without copying them.
    pub fn scan<R>(&self, f: impl FnOnce(&[Op]) -> R) -> R {
        f(&self.ops.lock().unwrap())
    }

    /// A copy of every operation.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    /// The writes whose outcome is still unknown or pending (to settle).
    pub fn unsettled(&self) -> Vec<Op> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|op| op.request.is_write() && !op.effective().is_definite())
            .cloned()
            .collect()
    }
}

/// A section's counts as one node reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionState {
    /// `general` or `seated`.
    pub kind: String,
    /// Capacity.
    pub capacity: u64,
    /// Available.
    pub available: u64,
    /// Held.
    pub held: u64,
    /// Sold.
    pub sold: u64,
}

/// A hold or booking as one node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectState {
    /// Its status (`held`, `confirmed`, `released`, `expired`, `cancelled`).
    pub status: String,
    /// The event id.
    pub event: String,
    /// Seat ids, sorted.
    pub seats: Vec<String>,
    /// General-admission lines, sorted.
    pub items: Vec<(String, u64)>,
    /// For a booking: the hold it came from.
    pub hold: Option<String>,
}

impl ObjectState {
    /// From a hold or booking JSON body.
    pub fn from_json(body: &Value) -> ObjectState {
        let mut seats: Vec<String> = body["seats"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        seats.sort();
        let mut items: Vec<(String, u64)> = body["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| {
                        (
                            i["section_id"].as_str().unwrap_or("").to_string(),
                            i["qty"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        items.sort();
        ObjectState {
            status: body["status"].as_str().unwrap_or("").to_string(),
            event: body["event_id"].as_str().unwrap_or("").to_string(),
            seats,
            items,
            hold: body["hold_id"].as_str().map(str::to_string),
        }
    }
}

/// What one node answered after a heal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The node id.
    pub node: u64,
    /// `applied` of each shard from its `GET /v1/cluster`, in shard order.
    pub applied: Vec<u64>,
    /// Event id → section id → counts.
    pub events: BTreeMap<String, BTreeMap<String, SectionState>>,
    /// (event id, seat id) → (section id, status) from the seat maps.
    pub seats: BTreeMap<(String, String), (String, String)>,
    /// Hold id → its state (`None`: 404).
    pub holds: BTreeMap<String, Option<ObjectState>>,
    /// Booking id → its state (`None`: 404).
    pub bookings: BTreeMap<String, Option<ObjectState>>,
    /// Every booking id the admin listing shows, when it was read.
    pub listed_bookings: Option<BTreeSet<String>>,
}

/// Which rule a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// An acknowledged hold or booking is missing (404) on a node.
    LostAck,
    /// A hold or booking is in a state its operations do not allow, or differs from its
    /// acknowledgement.
    Contradicted,
    /// A seat held or sold twice.
    DoubleOwner,
    /// Counts not conserved, or not matching the seat map or the live holds and bookings.
    Conservation,
    /// An effect that no request explains (a booking, a held or sold seat).
    Phantom,
    /// Nodes with equal applied positions and different state.
    Divergent,
    /// A read older than a write acknowledged before it began.
    StaleRead,
    /// A write whose outcome was never settled.
    Unsettled,
}

/// One broken rule, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The evidence.
    pub detail: String,
}

/// A hold known from the history.
#[derive(Debug, Default)]
struct HoldInfo {
    acquire: usize,
    confirms: Vec<usize>,
    releases: Vec<usize>,
}

/// A booking known from the history.
#[derive(Debug, Default)]
struct BookingInfo {
    /// The confirm or purchase that made it.
    acquire: usize,
    /// For a confirm: the hold.
    hold: Option<String>,
    cancels: Vec<usize>,
}

/// The objects a history made, by id.
#[derive(Debug, Default)]
struct Objects {
    holds: BTreeMap<String, HoldInfo>,
    bookings: BTreeMap<String, BookingInfo>,
}

fn id_of(body: &Value) -> Option<String> {
    body["id"].as_str().map(str::to_string)
}

fn objects(ops: &[Op]) -> Objects {
    let mut objects = Objects::default();
    for op in ops {
        match (&op.request, op.ok()) {
            (Request::Hold(_), Some(body)) => {
                if let Some(id) = id_of(body) {
                    objects.holds.entry(id).or_default().acquire = op.id;
                }
            }
            (Request::Buy(_), Some(body)) => {
                if let Some(id) = id_of(body) {
                    objects.bookings.entry(id).or_default().acquire = op.id;
                }
            }
            (Request::Confirm { hold }, Some(body)) => {
                if let Some(id) = id_of(body) {
                    let booking = objects.bookings.entry(id).or_default();
                    booking.acquire = op.id;
                    booking.hold = Some(hold.clone());
                }
            }
            _ => {}
        }
    }
    for op in ops {
        match &op.request {
            Request::Confirm { hold } => {
                if let Some(h) = objects.holds.get_mut(hold) {
                    h.confirms.push(op.id);
                }
            }
            Request::Release { hold } => {
                if let Some(h) = objects.holds.get_mut(hold) {
                    h.releases.push(op.id);
                }
            }
            Request::Cancel { booking } => {
                if let Some(b) = objects.bookings.get_mut(booking) {
                    b.cancels.push(op.id);
                }
            }
            _ => {}
        }
    }
    objects
}

fn acquire_of(op: &Op) -> Option<&Acquire> {
    match &op.request {
        Request::Hold(a) | Request::Buy(a) => Some(a),
        _ => None,
    }
}

/// The statuses a hold may have given its confirms and releases.
fn hold_allowed(ops: &[Op], info: &HoldInfo) -> BTreeSet<&'static str> {
    let confirm_ok = info.confirms.iter().any(|&i| ops[i].ok().is_some());
    let release_ok = info.releases.iter().any(|&i| ops[i].ok().is_some());
    let confirm_may = info.confirms.iter().any(|&i| ops[i].may_have_effect());
    let release_may = info.releases.iter().any(|&i| ops[i].may_have_effect());
    let mut allowed = BTreeSet::new();
    if confirm_ok {
        allowed.insert("confirmed");
    } else if release_ok {
        allowed.insert("released");
    } else {
        allowed.insert("held");
        if confirm_may {
            allowed.insert("confirmed");
        }
        if release_may {
            allowed.insert("released");
        }
    }
    allowed
}

/// The statuses a booking may have given its cancels.
fn booking_allowed(ops: &[Op], info: &BookingInfo) -> BTreeSet<&'static str> {
    let cancel_ok = info.cancels.iter().any(|&i| ops[i].ok().is_some());
    let cancel_may = info.cancels.iter().any(|&i| ops[i].may_have_effect());
    let mut allowed = BTreeSet::new();
    if cancel_ok {
        allowed.insert("cancelled");
    } else {
        allowed.insert("confirmed");
        if cancel_may {
            allowed.insert("cancelled");
        }
    }
    allowed
}

/// One chain of ownership of some seats: a hold (and the booking confirmed from it), or a
/// purchase. It certainly owns its seats from `owned_from` (its acquisition's effect end)
/// until `owned_until` (the first start of a request that may end it).
#[derive(Debug)]
struct Chain {
    name: String,
    event: String,
    seats: Vec<String>,
    acquire_start: Micros,
    owned_from: Micros,
    owned_until: Micros,
}

fn chains(ops: &[Op], objects: &Objects) -> Vec<Chain> {
    let mut out = Vec::new();
    let ending = |ids: &mut dyn Iterator<Item = usize>| {
        ids.filter(|&i| ops[i].may_have_effect())
            .map(|i| ops[i].start)
            .min()
            .unwrap_or(Micros::MAX)
    };
    for (id, hold) in &objects.holds {
        let op = &ops[hold.acquire];
        let Some(acquire) = acquire_of(op) else {
            continue;
        };
        let cancels: Vec<usize> = objects
            .bookings
            .values()
            .filter(|b| b.hold.as_deref() == Some(id.as_str()))
            .flat_map(|b| b.cancels.iter().copied())
            .collect();
        out.push(Chain {
            name: format!("hold {id}"),
            event: acquire.event.clone(),
            seats: acquire.seats.clone(),
            acquire_start: op.start,
            owned_from: op.effect_end(),
            owned_until: ending(&mut hold.releases.iter().copied().chain(cancels)),
        });
    }
    for (id, booking) in &objects.bookings {
        let op = &ops[booking.acquire];
        let Some(acquire) = acquire_of(op) else {
            continue; // made by a confirm: its hold's chain
        };
        out.push(Chain {
            name: format!("booking {id}"),
            event: acquire.event.clone(),
            seats: acquire.seats.clone(),
            acquire_start: op.start,
            owned_from: op.effect_end(),
            owned_until: ending(&mut booking.cancels.iter().copied()),
        });
    }
    out
}

/// Checks `ops` against the states the nodes answered after a heal; every violation found.
pub fn check(ops: &[Op], nodes: &[NodeState]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut violation = |rule: Rule, detail: String| out.push(Violation { rule, detail });
    let objects = objects(ops);

    // 6. Settled.
    for op in ops {
        if op.request.is_write() && !op.effective().is_definite() {
            violation(
                Rule::Unsettled,
                format!("op {} {:?} is {:?}", op.id, op.request, op.effective()),
            );
        }
    }

    // 1. In the history itself: no hold both confirmed and released, none confirmed into
    // two bookings.
    for (id, hold) in &objects.holds {
        let confirmed: BTreeSet<String> = hold
            .confirms
            .iter()
            .filter_map(|&i| ops[i].ok().and_then(id_of))
            .collect();
        let released = hold.releases.iter().any(|&i| ops[i].ok().is_some());
        if !confirmed.is_empty() && released {
            violation(
                Rule::Contradicted,
                format!("hold {id}: both a confirm and a release acknowledged"),
            );
        }
        if confirmed.len() > 1 {
            violation(
                Rule::Contradicted,
                format!("hold {id} confirmed into several bookings {confirmed:?}"),
            );
        }
    }

    // 2. In the history: an owner acknowledged while another certainly owned the seat.
    let chains = chains(ops, &objects);
    let mut by_seat: HashMap<(&str, &str), Vec<&Chain>> = HashMap::new();
    for chain in &chains {
        for seat in &chain.seats {
            by_seat
                .entry((chain.event.as_str(), seat.as_str()))
                .or_default()
                .push(chain);
        }
    }
    for ((event, seat), owners) in &by_seat {
        for a in owners {
            for b in owners {
                if a.owned_from < b.acquire_start
                    && b.owned_from < a.owned_until
                    && !std::ptr::eq(*a, *b)
                {
                    violation(
                        Rule::DoubleOwner,
                        format!(
                            "seat {seat} of {event}: {} acknowledged while {} held it",
                            b.name, a.name
                        ),
                    );
                }
            }
        }
    }

    // 5. Reads.
    check_reads(ops, &objects, &chains, &mut violation);

    // 1 to 3 on each node.
    for node in nodes {
        check_node(ops, &objects, node, &mut violation);
    }

    // 4. Equal applied, equal state.
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            if a.applied == b.applied && !a.applied.is_empty() {
                let differs = [
                    (a.events != b.events, "events"),
                    (a.seats != b.seats, "seat maps"),
                    (a.holds != b.holds, "holds"),
                    (a.bookings != b.bookings, "bookings"),
                ];
                for (_, what) in differs.iter().filter(|(d, _)| *d) {
                    violation(
                        Rule::Divergent,
                        format!(
                            "nodes {} and {} at applied {:?} differ in {what}",
                            a.node, b.node, a.applied
                        ),
                    );
                }
            }
        }
    }
    out
}

fn check_reads(
    ops: &[Op],
    objects: &Objects,
    chains: &[Chain],
    violation: &mut dyn FnMut(Rule, String),
) {
    // The first acknowledgement time of each write, per object.
    let acked = |ids: &[usize]| {
        ids.iter()
            .filter(|&&i| ops[i].ok().is_some())
            .map(|&i| ops[i].effect_end())
            .min()
            .unwrap_or(Micros::MAX)
    };
    for op in ops {
        let status = match op.effective() {
            Outcome::Ok(body) => body["status"].as_str().unwrap_or("").to_string(),
            Outcome::Failed { status: 404, .. } => "missing".to_string(),
            _ => continue,
        };
        match &op.request {
            Request::ReadHold { hold } => {
                let Some(info) = objects.holds.get(hold) else {
                    continue;
                };
                let created = ops[info.acquire].effect_end();
                let confirmed = acked(&info.confirms);
                let released = acked(&info.releases);
                let stale = (created < op.start && status == "missing")
                    || (confirmed < op.start && status != "confirmed")
                    || (released < op.start && status != "released");
                if stale {
                    violation(
                        Rule::StaleRead,
                        format!(
                            "op {}: hold {hold} read as {status} after a write acknowledged before",
                            op.id
                        ),
                    );
                }
            }
            Request::ReadBooking { booking } => {
                let Some(info) = objects.bookings.get(booking) else {
                    continue;
                };
                let created = ops[info.acquire].effect_end();
                let cancelled = acked(&info.cancels);
                let stale = (created < op.start && status == "missing")
                    || (cancelled < op.start && status != "cancelled");
                if stale {
                    violation(
                        Rule::StaleRead,
                        format!(
                            "op {}: booking {booking} read as {status} after a write acknowledged before",
                            op.id
                        ),
                    );
                }
            }
            Request::ReadSeats { event } => {
                let Some(body) = op.ok() else { continue };
                let map = seat_map(body);
                for chain in chains.iter().filter(|c| &c.event == event) {
                    if !(chain.owned_from < op.start && op.end < chain.owned_until) {
                        continue;
                    }
                    for seat in &chain.seats {
                        if map.get(seat.as_str()).is_some_and(|s| s == "free") {
                            violation(
                                Rule::StaleRead,
                                format!(
                                    "op {}: seat {seat} of {event} read free while {} owned it \
                                     since before the read",
                                    op.id, chain.name
                                ),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Seat id → status of a `GET /v1/events/{id}/seats` body.
pub fn seat_map(body: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for section in body["sections"].as_array().into_iter().flatten() {
        for row in section["rows"].as_array().into_iter().flatten() {
            for seat in row["seats"].as_array().into_iter().flatten() {
                if let (Some(id), Some(status)) = (seat["id"].as_str(), seat["status"].as_str()) {
                    out.insert(id.to_string(), status.to_string());
                }
            }
        }
    }
    out
}

fn check_node(
    ops: &[Op],
    objects: &Objects,
    node: &NodeState,
    violation: &mut dyn FnMut(Rule, String),
) {
    let n = node.node;
    // 1. Every acknowledged hold and booking, in an allowed status, as acknowledged.
    for (id, info) in &objects.holds {
        let op = &ops[info.acquire];
        let Some(read) = node.holds.get(id) else {
            continue;
        };
        let Some(state) = read else {
            violation(
                Rule::LostAck,
                format!("node {n}: acknowledged hold {id} (op {}) is missing", op.id),
            );
            continue;
        };
        let allowed = hold_allowed(ops, info);
        if !allowed.contains(state.status.as_str()) {
            violation(
                Rule::Contradicted,
                format!(
                    "node {n}: hold {id} is {} where its operations allow {allowed:?}",
                    state.status
                ),
            );
        }
        if let Some(acked) = op.ok() {
            let acked = ObjectState::from_json(acked);
            if (&acked.seats, &acked.items) != (&state.seats, &state.items) {
                violation(
                    Rule::Contradicted,
                    format!(
                        "node {n}: hold {id} has {:?} {:?}, acknowledged {:?} {:?}",
                        state.seats, state.items, acked.seats, acked.items
                    ),
                );
            }
        }
    }
    for (id, info) in &objects.bookings {
        let Some(read) = node.bookings.get(id) else {
            continue;
        };
        let Some(state) = read else {
            violation(
                Rule::LostAck,
                format!("node {n}: acknowledged booking {id} is missing"),
            );
            continue;
        };
        let allowed = booking_allowed(ops, info);
        if !allowed.contains(state.status.as_str()) {
            violation(
                Rule::Contradicted,
                format!(
                    "node {n}: booking {id} is {} where its operations allow {allowed:?}",
                    state.status
                ),
            );
        }
    }
    if let Some(listed) = &node.listed_bookings {
        for id in listed {
            if !objects.bookings.contains_key(id) {
                violation(
                    Rule::Phantom,
                    format!("node {n}: booking {id} was made by no acknowledged request"),
                );
            }
        }
    }

    // 2. No seat owned twice in this node's state, and the seat map shows the owners.
    let mut owner: BTreeMap<(&str, &str), (&str, &str)> = BTreeMap::new();
    let live = node
        .holds
        .iter()
        .filter_map(|(id, s)| s.as_ref().map(|s| (id, s)))
        .filter(|(_, s)| s.status == "held")
        .map(|(id, s)| (id, s, "held"))
        .chain(
            node.bookings
                .iter()
                .filter_map(|(id, s)| s.as_ref().map(|s| (id, s)))
                .filter(|(_, s)| s.status == "confirmed")
                .map(|(id, s)| (id, s, "sold")),
        );
    // (event, section) → (held, sold) of general admission from the live objects.
    let mut ga: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (id, state, status) in live {
        for seat in &state.seats {
            if let Some((other, _)) = owner.insert((&state.event, seat), (id, status)) {
                violation(
                    Rule::DoubleOwner,
                    format!(
                        "node {n}: seat {seat} of {} belongs to both {other} and {id}",
                        state.event
                    ),
                );
            }
        }
        for (section, qty) in &state.items {
            let entry = ga.entry((&state.event, section)).or_default();
            if status == "held" {
                entry.0 += qty;
            } else {
                entry.1 += qty;
            }
        }
    }
    for ((event, seat), (section, status)) in &node.seats {
        let expected = owner
            .get(&(event.as_str(), seat.as_str()))
            .map_or("free", |(_, s)| *s);
        if status != expected {
            let rule = if expected == "free" {
                Rule::Phantom
            } else {
                Rule::Conservation
            };
            violation(
                rule,
                format!(
                    "node {n}: seat {seat} ({section}) of {event} is {status}, its holds and \
                     bookings make it {expected}"
                ),
            );
        }
    }

    // 3. Counts.
    for (event, sections) in &node.events {
        for (id, s) in sections {
            if s.available + s.held + s.sold != s.capacity {
                violation(
                    Rule::Conservation,
                    format!(
                        "node {n}: {event}/{id}: available {} + held {} + sold {} != capacity {}",
                        s.available, s.held, s.sold, s.capacity
                    ),
                );
            }
            if s.kind == "seated" {
                let mut counts = (0, 0, 0);
                for ((e, _), (section, status)) in &node.seats {
                    if e == event && section == id {
                        match status.as_str() {
                            "free" => counts.0 += 1,
                            "held" => counts.1 += 1,
                            _ => counts.2 += 1,
                        }
                    }
                }
                if counts != (s.available, s.held, s.sold) {
                    violation(
                        Rule::Conservation,
                        format!(
                            "node {n}: {event}/{id}: seat map (free, held, sold) {counts:?}, \
                             counts ({}, {}, {})",
                            s.available, s.held, s.sold
                        ),
                    );
                }
            } else {
                let (held, sold) = ga
                    .get(&(event.as_str(), id.as_str()))
                    .copied()
                    .unwrap_or_default();
                if (held, sold) != (s.held, s.sold) {
                    let rule = if held < s.held || sold < s.sold {
                        Rule::Phantom
                    } else {
                        Rule::Conservation
                    };
                    violation(
                        rule,
                        format!(
                            "node {n}: {event}/{id}: held {} sold {}, its live holds and \
                             bookings make held {held} sold {sold}",
                            s.held, s.sold
                        ),
                    );
                }
            }
        }
    }
}

/// A one-line summary of violations by rule (empty: none).
pub fn summary(violations: &[Violation]) -> String {
    let mut by_rule: BTreeMap<Rule, usize> = BTreeMap::new();
    for v in violations {
        *by_rule.entry(v.rule).or_default() += 1;
    }
    by_rule
        .iter()
        .map(|(rule, n)| format!("{rule:?}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(request: Request, start: Micros, end: Micros, outcome: Outcome) -> Op {
        Op {
            id: 0,
            client: 0,
            node: 1,
            request,
            key: Some("k".into()),
            start,
            end,
            outcome,
            settled: None,
        }
    }

    fn hold(seats: &[&str]) -> Request {
        Request::Hold(Acquire {
            event: "e".into(),
            user: "u".into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            items: vec![],
        })
    }

    fn hold_ok(id: &str, seats: &[&str]) -> Outcome {
        Outcome::Ok(
            json!({"id": id, "event_id": "e", "status": "held", "seats": seats, "items": []}),
        )
    }

    fn booking_ok(id: &str, hold: &str, seats: &[&str]) -> Outcome {
        Outcome::Ok(
            json!({"id": id, "hold_id": hold, "event_id": "e", "status": "confirmed", "seats": seats, "items": []}),
        )
    }

    fn failed(status: u16, code: &str) -> Outcome {
        Outcome::Failed {
            status,
            code: code.into(),
        }
    }

    fn unknown() -> Outcome {
        Outcome::Unknown {
            why: "timeout".into(),
        }
    }

    fn object(status: &str, seats: &[&str], hold: Option<&str>) -> Option<ObjectState> {
        Some(ObjectState {
            status: status.into(),
            event: "e".into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            items: vec![],
            hold: hold.map(str::to_string),
        })
    }

    fn seats_body(seats: &[(&str, &str)]) -> Value {
        let seats: Vec<Value> = seats
            .iter()
            .map(|(id, status)| json!({"id": id, "status": status}))
            .collect();
        json!({"event_id": "e", "sections": [{"section_id": "s", "rows": [{"label": "A", "seats": seats}]}]})
    }

    /// A node whose event `e` has one seated section `s` of seats with these
    /// statuses, and these holds and bookings.
    fn node(
        id: u64,
        seats: &[(&str, &str)],
        holds: &[(&str, Option<ObjectState>)],
        bookings: &[(&str, Option<ObjectState>)],
    ) -> NodeState {
        let count = |st: &str| seats.iter().filter(|(_, s)| *s == st).count() as u64;
        let mut sections = BTreeMap::new();
        sections.insert(
            "s".to_string(),
            SectionState {
                kind: "seated".into(),
                capacity: seats.len() as u64,
                available: count("free"),
                held: count("held"),
                sold: count("sold"),
            },
        );
        NodeState {
            node: id,
            applied: vec![7, 3],
            events: [("e".to_string(), sections)].into_iter().collect(),
            seats: seats
                .iter()
                .map(|(seat, st)| {
                    (
                        ("e".to_string(), seat.to_string()),
                        ("s".to_string(), st.to_string()),
                    )
                })
                .collect(),
            holds: holds
                .iter()
                .map(|(h, s)| (h.to_string(), s.clone()))
                .collect(),
            bookings: bookings
                .iter()
                .map(|(b, s)| (b.to_string(), s.clone()))
                .collect(),
            listed_bookings: Some(bookings.iter().map(|(b, _)| b.to_string()).collect()),
        }
    }

    /// A clean sale: hold A-1, confirm it, read it back; A-2 held and released.
    fn clean() -> (History, NodeState) {
        let h = History::new();
        h.push(op(hold(&["A-1"]), 0, 10, hold_ok("h-0-1", &["A-1"])));
        h.push(op(
            Request::Confirm {
                hold: "h-0-1".into(),
            },
            20,
            30,
            booking_ok("b-0-1", "h-0-1", &["A-1"]),
        ));
        h.push(op(hold(&["A-2"]), 5, 15, hold_ok("h-0-2", &["A-2"])));
        h.push(op(
            Request::Release {
                hold: "h-0-2".into(),
            },
            20,
            25,
            Outcome::Ok(json!({"id": "h-0-2", "status": "released"})),
        ));
        h.push(op(
            Request::ReadHold {
                hold: "h-0-1".into(),
            },
            40,
            50,
            Outcome::Ok(json!({"id": "h-0-1", "status": "confirmed"})),
        ));
        h.push(op(
            Request::ReadSeats { event: "e".into() },
            40,
            50,
            Outcome::Ok(seats_body(&[("A-1", "sold"), ("A-2", "free")])),
        ));
        let n = node(
            1,
            &[("A-1", "sold"), ("A-2", "free")],
            &[
                ("h-0-1", object("confirmed", &["A-1"], None)),
                ("h-0-2", object("released", &["A-2"], None)),
            ],
            &[("b-0-1", object("confirmed", &["A-1"], Some("h-0-1")))],
        );
        (h, n)
    }

    fn rules(h: &History, nodes: &[NodeState]) -> Vec<Rule> {
        let mut rules: Vec<Rule> = check(&h.ops(), nodes).iter().map(|v| v.rule).collect();
        rules.sort();
        rules.dedup();
        rules
    }

    #[test]
    fn a_clean_history_passes() {
        let (h, n) = clean();
        let mut m = n.clone();
        m.node = 2;
        assert_eq!(check(&h.ops(), &[n, m]), vec![]);
    }

    #[test]
    fn a_missing_acknowledged_hold_is_a_lost_ack() {
        let (h, mut n) = clean();
        n.holds.insert("h-0-2".into(), None);
        assert_eq!(rules(&h, &[n]), vec![Rule::LostAck]);
    }

    #[test]
    fn a_missing_acknowledged_booking_is_a_lost_ack() {
        let (h, mut n) = clean();
        n.bookings.insert("b-0-1".into(), None);
        n.listed_bookings = Some(BTreeSet::new());
        // The sold seat is now owned by nothing the node shows: a phantom too.
        assert!(rules(&h, &[n]).contains(&Rule::LostAck));
    }

    #[test]
    fn a_hold_released_after_an_acknowledged_confirm_is_contradicted() {
        let (h, mut n) = clean();
        n.holds
            .insert("h-0-1".into(), object("released", &["A-1"], None));
        assert!(rules(&h, &[n]).contains(&Rule::Contradicted));
    }

    #[test]
    fn a_refused_confirm_with_an_effect_is_contradicted() {
        let h = History::new();
        h.push(op(hold(&["A-1"]), 0, 10, hold_ok("h-0-1", &["A-1"])));
        h.push(op(
            Request::Confirm {
                hold: "h-0-1".into(),
            },
            20,
            30,
            failed(409, "hold_not_active"),
        ));
        let n = node(
            1,
            &[("A-1", "held"), ("A-2", "free")],
            &[("h-0-1", object("confirmed", &["A-1"], None))],
            &[],
        );
        assert!(rules(&h, &[n]).contains(&Rule::Contradicted));
    }

    #[test]
    fn a_hold_with_other_seats_than_acknowledged_is_contradicted() {
        let (h, mut n) = clean();
        n.holds
            .insert("h-0-2".into(), object("released", &["A-1"], None));
        assert_eq!(rules(&h, &[n]), vec![Rule::Contradicted]);
    }

    #[test]
    fn both_confirm_and_release_acknowledged_is_contradicted() {
        let (h, n) = clean();
        h.push(op(
            Request::Release {
                hold: "h-0-1".into(),
            },
            60,
            70,
            Outcome::Ok(json!({"id": "h-0-1", "status": "released"})),
        ));
        assert!(rules(&h, &[n]).contains(&Rule::Contradicted));
    }

    #[test]
    fn one_seat_sold_to_two_bookings_on_a_node_is_a_double_owner() {
        let h = History::new();
        for (i, start) in [(1, 0), (2, 20)] {
            h.push(op(
                Request::Buy(Acquire {
                    event: "e".into(),
                    user: "u".into(),
                    seats: vec!["A-1".into()],
                    items: vec![],
                }),
                start,
                start + 10,
                booking_ok(&format!("b-0-{i}"), &format!("h-0-{i}"), &["A-1"]),
            ));
        }
        let n = node(
            1,
            &[("A-1", "sold"), ("A-2", "free")],
            &[],
            &[
                ("b-0-1", object("confirmed", &["A-1"], Some("h-0-1"))),
                ("b-0-2", object("confirmed", &["A-1"], Some("h-0-2"))),
            ],
        );
        // Both in the state and in the history (b-0-2 acknowledged while b-0-1 owned A-1).
        let found = check(&h.ops(), &[n]);
        let doubles = found.iter().filter(|v| v.rule == Rule::DoubleOwner).count();
        assert_eq!(doubles, 2, "{found:?}");
    }

    #[test]
    fn a_seat_held_again_while_certainly_held_is_a_double_owner() {
        let h = History::new();
        h.push(op(hold(&["A-1"]), 0, 10, hold_ok("h-0-1", &["A-1"])));
        // A release whose outcome stayed open only ends ownership from its start (40).
        h.push(op(
            Request::Release {
                hold: "h-0-1".into(),
            },
            40,
            50,
            unknown(),
        ));
        h.push(op(hold(&["A-1"]), 20, 30, hold_ok("h-0-2", &["A-1"])));
        assert!(rules(&h, &[]).contains(&Rule::DoubleOwner));
        // The same second hold, invoked after the release began, may be right.
        let h2 = History::new();
        h2.push(op(hold(&["A-1"]), 0, 10, hold_ok("h-0-1", &["A-1"])));
        let mut release = op(
            Request::Release {
                hold: "h-0-1".into(),
            },
            40,
            50,
            unknown(),
        );
        release.settled = Some((
            90,
            Outcome::Ok(json!({"id": "h-0-1", "status": "released"})),
        ));
        h2.push(release);
        h2.push(op(hold(&["A-1"]), 45, 60, hold_ok("h-0-2", &["A-1"])));
        assert_eq!(rules(&h2, &[]), vec![]);
    }

    #[test]
    fn counts_that_do_not_add_up_break_conservation() {
        let (h, mut n) = clean();
        n.events
            .get_mut("e")
            .unwrap()
            .get_mut("s")
            .unwrap()
            .available = 2;
        assert_eq!(rules(&h, &[n]), vec![Rule::Conservation]);
    }

    #[test]
    fn general_admission_counts_must_match_the_live_holds() {
        let h = History::new();
        let ga = Request::Hold(Acquire {
            event: "e".into(),
            user: "u".into(),
            seats: vec![],
            items: vec![("ga".into(), 2)],
        });
        h.push(op(
            ga,
            0,
            10,
            Outcome::Ok(json!({"id": "h-0-1", "event_id": "e", "status": "held", "seats": [], "items": [{"section_id": "ga", "qty": 2}]})),
        ));
        let held = Some(ObjectState {
            status: "held".into(),
            event: "e".into(),
            seats: vec![],
            items: vec![("ga".into(), 2)],
            hold: None,
        });
        let mut n = NodeState {
            node: 1,
            holds: [("h-0-1".to_string(), held)].into_iter().collect(),
            ..NodeState::default()
        };
        let section = |held| SectionState {
            kind: "general".into(),
            capacity: 10,
            available: 10 - held,
            held,
            sold: 0,
        };
        n.events.insert(
            "e".into(),
            [("ga".to_string(), section(2))].into_iter().collect(),
        );
        assert_eq!(rules(&h, std::slice::from_ref(&n)), vec![]);
        // Three held where the only hold has two: a hold nobody asked for.
        n.events.insert(
            "e".into(),
            [("ga".to_string(), section(3))].into_iter().collect(),
        );
        assert_eq!(rules(&h, &[n]), vec![Rule::Phantom]);
    }

    #[test]
    fn a_booking_no_request_made_is_a_phantom() {
        let (h, mut n) = clean();
        n.listed_bookings.as_mut().unwrap().insert("b-0-9".into());
        assert_eq!(rules(&h, &[n]), vec![Rule::Phantom]);
    }

    #[test]
    fn a_held_seat_without_a_live_hold_is_a_phantom() {
        let (h, mut n) = clean();
        n.seats
            .insert(("e".into(), "A-2".into()), ("s".into(), "held".into()));
        let s = n.events.get_mut("e").unwrap().get_mut("s").unwrap();
        s.available = 0;
        s.held = 1;
        assert_eq!(rules(&h, &[n]), vec![Rule::Phantom]);
    }

    #[test]
    fn equal_applied_with_different_state_is_divergent() {
        let (h, n) = clean();
        let mut m = n.clone();
        m.node = 2;
        m.holds
            .insert("h-0-2".into(), object("held", &["A-2"], None));
        m.seats
            .insert(("e".into(), "A-2".into()), ("s".into(), "held".into()));
        let found = rules(&h, &[n.clone(), m.clone()]);
        assert!(found.contains(&Rule::Divergent), "{found:?}");
        // At different applied positions the difference is not divergence.
        m.applied = vec![8, 3];
        assert!(!rules(&h, &[n, m]).contains(&Rule::Divergent));
    }

    #[test]
    fn a_read_older_than_an_acknowledged_confirm_is_stale() {
        let (h, n) = clean();
        h.push(op(
            Request::ReadHold {
                hold: "h-0-1".into(),
            },
            35,
            45,
            Outcome::Ok(json!({"id": "h-0-1", "status": "held"})),
        ));
        assert_eq!(rules(&h, &[n]), vec![Rule::StaleRead]);
        // A read that began before the confirm was acknowledged may see it held.
        let (h, n) = clean();
        h.push(op(
            Request::ReadHold {
                hold: "h-0-1".into(),
            },
            25,
            45,
            Outcome::Ok(json!({"id": "h-0-1", "status": "held"})),
        ));
        assert_eq!(rules(&h, &[n]), vec![]);
    }

    #[test]
    fn a_hold_read_missing_after_its_acknowledgement_is_stale() {
        let (h, n) = clean();
        h.push(op(
            Request::ReadHold {
                hold: "h-0-2".into(),
            },
            16,
            18,
            failed(404, "not_found"),
        ));
        assert_eq!(rules(&h, &[n]), vec![Rule::StaleRead]);
    }

    #[test]
    fn a_booking_read_confirmed_after_an_acknowledged_cancel_is_stale() {
        let (h, mut n) = clean();
        h.push(op(
            Request::Cancel {
                booking: "b-0-1".into(),
            },
            60,
            70,
            Outcome::Ok(json!({"id": "b-0-1", "status": "cancelled"})),
        ));
        h.push(op(
            Request::ReadBooking {
                booking: "b-0-1".into(),
            },
            80,
            90,
            Outcome::Ok(json!({"id": "b-0-1", "status": "confirmed"})),
        ));
        n.bookings
            .insert("b-0-1".into(), object("cancelled", &["A-1"], Some("h-0-1")));
        n.seats
            .insert(("e".into(), "A-1".into()), ("s".into(), "free".into()));
        let s = n.events.get_mut("e").unwrap().get_mut("s").unwrap();
        s.available = 2;
        s.sold = 0;
        assert_eq!(rules(&h, &[n]), vec![Rule::StaleRead]);
    }

    #[test]
    fn a_seat_read_free_while_certainly_owned_is_stale() {
        let (h, n) = clean();
        h.push(op(
            Request::ReadSeats { event: "e".into() },
            40,
            50,
            Outcome::Ok(seats_body(&[("A-1", "free"), ("A-2", "free")])),
        ));
        assert_eq!(rules(&h, &[n]), vec![Rule::StaleRead]);
    }

    #[test]
    fn an_unknown_write_left_unsettled_is_reported_and_a_settled_one_counts() {
        let (h, n) = clean();
        let id = h.push(op(
            Request::Cancel {
                booking: "b-0-1".into(),
            },
            60,
            70,
            unknown(),
        ));
        assert_eq!(rules(&h, std::slice::from_ref(&n)), vec![Rule::Unsettled]);
        // Settled as refused: the booking must still be confirmed, and it is.
        h.settle(id, failed(409, "booking_not_active"));
        assert_eq!(rules(&h, std::slice::from_ref(&n)), vec![]);
    }

    #[test]
    fn outcomes_of_answers() {
        let body = |code: &str| json!({"error": {"code": code, "message": "m"}});
        assert!(matches!(
            Outcome::of_answer(201, &json!({})),
            Outcome::Ok(_)
        ));
        assert!(matches!(
            Outcome::of_answer(503, &body("outcome_unknown")),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            Outcome::of_answer(503, &body("unavailable")),
            Outcome::Failed { status: 503, .. }
        ));
        assert!(matches!(
            Outcome::of_answer(500, &body("internal")),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            Outcome::of_answer(409, &body("seat_taken")),
            Outcome::Failed { status: 409, .. }
        ));
    }
}
