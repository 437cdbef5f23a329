//! Cluster mode on real separate hosts (network namespaces, tests/src/netns.rs): three
//! nodes, two shards, a sale driven by a few concurrent clients through any node, and the
//! faults of issue 17: kill -9 of a shard leader (then restart), leader isolation, a
//! one-way partition, leader pauses longer than the election timeout. After each heal the
//! history checker (tests/src/history.rs) compares every request with every node's state:
//! zero lost acknowledgements, zero double sales, conserved counts, equal state at equal
//! applied positions, no stale read, every unknown outcome settled by its Idempotency-Key.
//! Per kill it prints the time from kill -9 to the first acknowledged write sent after it on
//! that shard (measured, never asserted).
//!
//! Sizes come from the environment, so `bench/cluster-campaign.sh` runs the full campaign
//! with this same test: `BOXOFFICE_CAMPAIGN_KILLS` (default 5), `_ISOLATIONS` (1),
//! `_ONEWAY` (1), `_PAUSES` (2), `_SECONDS` (the time budget, default 200: no new fault
//! starts after it), `_ISOLATION_MS` (3000), `_PAUSE_MS` (1500), `_CLIENTS` (3).
//! `BOXOFFICE_SEED` picks the moments and requests again.
//!
//! Needs root, `ip` and `nft` (CI installs nftables and iproute2 in .ci/run): outside CI
//! the tests skip without them; under CI=true they fail.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::history::{
    check, summary, Acquire, History, Micros, NodeState, ObjectState, Op, Outcome, Request,
    SectionState,
};
use harness::netns::{self, Answer, Hosts};
use harness::{env_or, seed_or, user_token_signed, Rng, ADMIN, SECRET};
use serde_json::{json, Value};

/// Nodes of the cluster.
const NODES: u64 = 3;
/// Shards of the cluster.
const SHARDS: usize = 2;
/// A client request's time limit: longer than an election, so a timeout means trouble.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the cluster gets to elect leaders, a restarted node to catch up, followers
/// to reach the leader's applied position.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the retries of one unknown outcome may take in all.
const RETRY_DEADLINE: Duration = Duration::from_secs(30);
/// A client's pause between requests (two cores for three nodes and the clients).
const THINK: Duration = Duration::from_millis(15);
/// How long a killed leader stays down before its restart.
const DOWN: Duration = Duration::from_millis(1500);
/// Rows and seats per row of each event's seated section.
const ROWS: &[&str] = &["A", "B", "C", "D"];
const SEATS_PER_ROW: u64 = 15;
/// Capacity of each event's general-admission section, per second of the campaign's time
/// budget: more than the clients can take in that time (the full-size campaign had about
/// 12 writes acknowledged per second, each taking at most 3 tickets), so the events do not
/// sell out before the run ends. A sold-out event answers every write 409, and no kill
/// could then be followed by an acknowledged write: the full-size campaign stopped at
/// kill 76 on 1,000.
const GA_TICKETS_PER_BUDGET_SECOND: u64 = 100;
/// The least capacity of each event's general-admission section.
const GA_CAPACITY_MIN: u64 = 1000;
/// Hold lifetime: longer than any run, so no hold expires (the checker allows no
/// `expired`).
const TTL_SECONDS: u64 = 86_400;

/// The shard of an event: a copy of `server/src/routing.rs` (FNV-1a, then the byte 0xff).
fn shard_for_event(event_id: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in event_id.as_bytes().iter().chain(&[0xff]) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

/// The shard of a hold or booking id (`h-<shard>-<n>`).
fn shard_of_id(id: &str) -> Option<usize> {
    id.split('-').nth(1)?.parse().ok()
}

/// What goes on the wire for a write, to retry it exactly.
#[derive(Clone, Debug)]
struct Wire {
    method: &'static str,
    path: String,
    body: Option<String>,
    user: Option<String>,
}

/// The cluster under test: its hosts, the cluster file, and the nodes' arguments.
struct Cluster {
    hosts: Hosts,
    file: String,
}

impl Cluster {
    fn start() -> Cluster {
        let hosts = Hosts::new(NODES);
        let mut toml = format!("shards = {SHARDS}\n");
        for i in 1..=NODES {
            toml.push_str(&format!(
                "[[nodes]]\nid = {i}\nhttp = \"{}:{}\"\nraft = \"{}:{}\"\n",
                hosts.ip(i),
                netns::HTTP_PORT,
                hosts.ip(i),
                netns::RAFT_PORT
            ));
        }
        let file = hosts.dir().join("cluster.toml");
        std::fs::write(&file, toml).expect("the cluster file is written");
        let cluster = Cluster {
            file: file.display().to_string(),
            hosts,
        };
        for i in 1..=NODES {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&self, i: u64) {
        let dir = self.hosts.dir().join(format!("data-{i}"));
        let args: Vec<String> = vec![
            "serve".into(),
            "--cluster".into(),
            self.file.clone(),
            "--node-id".into(),
            i.to_string(),
            "--data-dir".into(),
            dir.display().to_string(),
        ];
        self.hosts.spawn(
            i,
            &harness::binary(),
            &args,
            &[
                ("BOXOFFICE_ADMIN_TOKEN", ADMIN),
                ("BOXOFFICE_JWT_SECRET", SECRET),
                ("RUST_LOG", "info"),
            ],
        );
    }

    fn get(&self, i: u64, path: &str, token: Option<&str>) -> Option<Answer> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        self.hosts
            .http(i, "GET", path, &headers, None, REQUEST_TIMEOUT)
            .ok()
    }

    /// GET `path` from node `i` as the admin, retrying (≤ 30 s) while it does not answer
    /// or answers 503 (a leader change under way); the answer.
    fn read(&self, i: u64, path: &str) -> Answer {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let answer = self.get(i, path, Some(ADMIN));
            if let Some(answer) = &answer {
                if answer.status != 503 {
                    return answer.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {i}: GET {path} got no answer but 503 within {SETTLE_DEADLINE:?}: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /v1/cluster` of node `i`, if it answers.
    fn view(&self, i: u64) -> Option<Value> {
        self.get(i, "/v1/cluster", None)
            .filter(|a| a.status == 200)
            .map(|a| a.body)
    }

    /// The leader of `shard` as that leader itself reports it.
    fn leader_now(&self, shard: usize) -> Option<u64> {
        for i in 1..=NODES {
            if self.hosts.exited(i) {
                continue;
            }
            let Some(view) = self.view(i) else { continue };
            let Some(leader) = view["shards"][shard]["leader"].as_u64() else {
                continue;
            };
            if leader == i {
                return Some(i);
            }
        }
        None
    }

    /// Waits (≤ 30 s) until every shard has a leader; the leaders.
    fn leaders(&self) -> Vec<u64> {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let leaders: Vec<Option<u64>> = (0..SHARDS).map(|s| self.leader_now(s)).collect();
            if leaders.iter().all(Option::is_some) {
                return leaders.into_iter().flatten().collect();
            }
            assert!(
                Instant::now() < deadline,
                "no leader for every shard within {SETTLE_DEADLINE:?}: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `applied` per shard of node `i`.
    fn applied(&self, i: u64) -> Option<Vec<u64>> {
        let view = self.view(i)?;
        view["shards"]
            .as_array()?
            .iter()
            .map(|s| s["applied"].as_u64())
            .collect()
    }

    /// Waits (≤ 30 s) until restarted node `i` has applied, on every shard, what that
    /// shard's leader had applied when `i` first answered.
    fn rejoin(&self, i: u64) {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let mut target: Option<Vec<u64>> = None;
        loop {
            if target.is_none() && self.view(i).is_some() {
                let leaders = self.leaders();
                let applied: Option<Vec<u64>> = leaders
                    .iter()
                    .enumerate()
                    .map(|(s, &l)| self.applied(l).map(|a| a[s]))
                    .collect();
                target = applied;
            }
            if let (Some(target), Some(now)) = (&target, self.applied(i)) {
                if now.iter().zip(target).all(|(n, t)| n >= t) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not catch up within {SETTLE_DEADLINE:?} (target {target:?}, \
                 applied {:?}):\n{}",
                self.applied(i),
                self.hosts.log_tail(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (≤ 30 s) until every node answers with the same `applied`; the time it took.
    fn converge(&self) -> Duration {
        let started = Instant::now();
        let deadline = started + SETTLE_DEADLINE;
        loop {
            let applied: Vec<Option<Vec<u64>>> = (1..=NODES).map(|i| self.applied(i)).collect();
            if applied.iter().all(Option::is_some) && applied.windows(2).all(|w| w[0] == w[1]) {
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "the nodes did not reach one applied position within {SETTLE_DEADLINE:?}: \
                 {applied:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The shared state of the clients and the controller.
struct Sale {
    cluster: Cluster,
    history: History,
    wires: Mutex<HashMap<usize, Wire>>,
    events: Vec<String>,
    /// The event's shard, by event id.
    shard: HashMap<String, usize>,
    stop: AtomicBool,
    /// Clients wait while this is set (the controller settles and checks).
    quiet: AtomicBool,
    in_flight: AtomicUsize,
}

impl Sale {
    /// Sends one request to node `node` and records it; the outcome.
    fn send(&self, client: usize, node: u64, request: Request, wire: Wire) -> (usize, Outcome) {
        let key = request
            .is_write()
            .then(|| format!("c{client}-{}", self.history.now()));
        let id = self.history.invoke(client, node, request, key.clone());
        if key.is_some() {
            self.wires.lock().unwrap().insert(id, wire.clone());
        }
        let outcome = self.wire_outcome(node, &wire, key.as_deref());
        self.history.complete(id, outcome.clone());
        (id, outcome)
    }

    fn wire_outcome(&self, node: u64, wire: &Wire, key: Option<&str>) -> Outcome {
        let token = wire
            .user
            .as_deref()
            .map(|u| user_token_signed(u, 2 * TTL_SECONDS as i64, SECRET))
            .unwrap_or_else(|| ADMIN.to_string());
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(key) = key {
            headers.push(("idempotency-key", key));
        }
        match self.cluster.hosts.http(
            node,
            wire.method,
            &wire.path,
            &headers,
            wire.body.as_deref(),
            REQUEST_TIMEOUT,
        ) {
            Ok(answer) => Outcome::of_answer(answer.status, &answer.body),
            Err(e) if !e.sent => Outcome::Failed {
                status: 0,
                code: e.message,
            },
            Err(e) => Outcome::Unknown { why: e.message },
        }
    }

    /// The shard an operation touches.
    fn shard_of(&self, op: &Op) -> Option<usize> {
        match &op.request {
            Request::Hold(a) | Request::Buy(a) => self.shard.get(&a.event).copied(),
            Request::Confirm { hold } | Request::Release { hold } => shard_of_id(hold),
            Request::Cancel { booking } => shard_of_id(booking),
            _ => None,
        }
    }
}

/// One client: holds, confirms, releases, buys, cancels and reads through random nodes.
fn client(sale: &Sale, client: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ (client as u64 + 1).wrapping_mul(0x51_7c_c1_b7));
    let user = format!("u{client}");
    let mut holds: Vec<String> = Vec::new();
    let mut bookings: Vec<String> = Vec::new();
    let mut steps = 0u64;
    while !sale.stop.load(Ordering::Relaxed) {
        steps += 1;
        assert!(steps < 10_000_000, "a client loop without end");
        if sale.quiet.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        sale.in_flight.fetch_add(1, Ordering::AcqRel);
        if sale.quiet.load(Ordering::Acquire) {
            sale.in_flight.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let node = 1 + rng.below(NODES);
        let event = sale.events[rng.below(sale.events.len() as u64) as usize].clone();
        let roll = rng.below(100);
        let acquire = |rng: &mut Rng| {
            let mut a = Acquire {
                event: event.clone(),
                user: user.clone(),
                ..Acquire::default()
            };
            if rng.below(4) == 0 {
                a.items.push(("ga".into(), 1 + rng.below(3)));
            } else {
                let n = 1 + rng.below(2);
                let mut seats = BTreeSet::new();
                for _ in 0..n {
                    let row = ROWS[rng.below(ROWS.len() as u64) as usize];
                    seats.insert(format!("{row}-{}", 1 + rng.below(SEATS_PER_ROW)));
                }
                a.seats = seats.into_iter().collect();
            }
            a
        };
        let body_of = |a: &Acquire| {
            let mut body = json!({"ttl_seconds": TTL_SECONDS});
            if !a.seats.is_empty() {
                body["seats"] = json!(a.seats);
            }
            if !a.items.is_empty() {
                body["items"] = a
                    .items
                    .iter()
                    .map(|(s, q)| json!({"section_id": s, "qty": q}))
                    .collect();
            }
            body.to_string()
        };
        let wire = |method, path: String, body: Option<String>| Wire {
            method,
            path,
            body,
            user: Some(user.clone()),
        };
        match roll {
            0..=39 => {
                let a = acquire(&mut rng);
                let w = wire(
                    "POST",
                    format!("/v1/events/{event}/holds"),
                    Some(body_of(&a)),
                );
                if let (_, Outcome::Ok(body)) = sale.send(client, node, Request::Hold(a), w) {
                    holds.extend(body["id"].as_str().map(str::to_string));
                }
            }
            40..=59 if !holds.is_empty() => {
                let hold = holds.swap_remove(rng.below(holds.len() as u64) as usize);
                let w = wire(
                    "POST",
                    format!("/v1/holds/{hold}/confirm"),
                    Some("{}".into()),
                );
                if let (_, Outcome::Ok(body)) =
                    sale.send(client, node, Request::Confirm { hold }, w)
                {
                    bookings.extend(body["id"].as_str().map(str::to_string));
                }
            }
            60..=71 if !holds.is_empty() => {
                let hold = holds.swap_remove(rng.below(holds.len() as u64) as usize);
                let w = wire("DELETE", format!("/v1/holds/{hold}"), None);
                sale.send(client, node, Request::Release { hold }, w);
            }
            72..=79 => {
                let a = acquire(&mut rng);
                let w = wire(
                    "POST",
                    format!("/v1/events/{event}/bookings"),
                    Some(body_of(&a)),
                );
                if let (_, Outcome::Ok(body)) = sale.send(client, node, Request::Buy(a), w) {
                    bookings.extend(body["id"].as_str().map(str::to_string));
                }
            }
            80..=89 if !bookings.is_empty() => {
                let booking = bookings.swap_remove(rng.below(bookings.len() as u64) as usize);
                let w = wire(
                    "POST",
                    format!("/v1/bookings/{booking}/cancel"),
                    Some("{}".into()),
                );
                sale.send(client, node, Request::Cancel { booking }, w);
            }
            90..=93 if !holds.is_empty() => {
                let hold = holds[rng.below(holds.len() as u64) as usize].clone();
                let w = wire("GET", format!("/v1/holds/{hold}"), None);
                sale.send(client, node, Request::ReadHold { hold }, w);
            }
            94..=96 if !bookings.is_empty() => {
                let booking = bookings[rng.below(bookings.len() as u64) as usize].clone();
                let w = wire("GET", format!("/v1/bookings/{booking}"), None);
                sale.send(client, node, Request::ReadBooking { booking }, w);
            }
            _ => {
                let w = wire("GET", format!("/v1/events/{event}/seats"), None);
                sale.send(client, node, Request::ReadSeats { event }, w);
            }
        }
        sale.in_flight.fetch_sub(1, Ordering::AcqRel);
        std::thread::sleep(THINK);
    }
}

/// Retries every unknown write with its Idempotency-Key until a definite answer (a 2xx or
/// a 4xx; a 503 says nothing of the first attempt), ≤ 30 s per write.
fn settle(sale: &Sale) -> usize {
    let unsettled = sale.history.unsettled();
    for op in &unsettled {
        let wire = sale.wires.lock().unwrap()[&op.id].clone();
        let deadline = Instant::now() + RETRY_DEADLINE;
        let mut node = op.node;
        while Instant::now() < deadline {
            let outcome = sale.wire_outcome(node, &wire, op.key.as_deref());
            let definite = match &outcome {
                Outcome::Ok(_) => true,
                Outcome::Failed { status, .. } => (400..500).contains(status),
                _ => false,
            };
            if definite {
                sale.history.settle(op.id, outcome);
                break;
            }
            node = node % NODES + 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    unsettled.len()
}

/// What the controller keeps of each node's state between checks.
#[derive(Default)]
struct States {
    nodes: Vec<NodeState>,
    /// Ops before this index were read back at the last check.
    read_up_to: usize,
}

/// Reads node `i`'s state: applied, events, seat maps, booking listings, and the holds and
/// bookings the history names (all of them when `full`, else those touched since the
/// last check; the others keep their last reading).
fn read_node(sale: &Sale, i: u64, state: &mut NodeState, ops: &[Op], from: usize, full: bool) {
    let c = &sale.cluster;
    state.node = i;
    state.applied = c.applied(i).unwrap_or_default();
    let ok = |path: &str| -> Value {
        let answer = c.read(i, path);
        assert_eq!(answer.status, 200, "node {i}: GET {path}: {}", answer.body);
        answer.body
    };
    let mut listed = BTreeSet::new();
    for event in &sale.events {
        let body = ok(&format!("/v1/events/{event}"));
        let mut sections = BTreeMap::new();
        for s in body["sections"].as_array().expect("sections") {
            sections.insert(
                s["id"].as_str().unwrap_or("").to_string(),
                SectionState {
                    kind: s["kind"].as_str().unwrap_or("").to_string(),
                    capacity: s["capacity"].as_u64().unwrap_or(0),
                    available: s["available"].as_u64().unwrap_or(0),
                    held: s["held"].as_u64().unwrap_or(0),
                    sold: s["sold"].as_u64().unwrap_or(0),
                },
            );
        }
        state.events.insert(event.clone(), sections);
        let map = ok(&format!("/v1/events/{event}/seats"));
        state.seats.retain(|(e, _), _| e != event);
        for section in map["sections"].as_array().expect("seat map sections") {
            let section_id = section["section_id"].as_str().unwrap_or("").to_string();
            for row in section["rows"].as_array().into_iter().flatten() {
                for seat in row["seats"].as_array().into_iter().flatten() {
                    state.seats.insert(
                        (event.clone(), seat["id"].as_str().unwrap_or("").to_string()),
                        (
                            section_id.clone(),
                            seat["status"].as_str().unwrap_or("").to_string(),
                        ),
                    );
                }
            }
        }
        let mut after: Option<String> = None;
        for _page in 0..1000 {
            let path = match &after {
                Some(cursor) => format!("/v1/bookings?event_id={event}&limit=1000&after={cursor}"),
                None => format!("/v1/bookings?event_id={event}&limit=1000"),
            };
            let page = ok(&path);
            for b in page["data"].as_array().expect("a booking page") {
                listed.extend(b["id"].as_str().map(str::to_string));
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => after = Some(cursor.to_string()),
                None => break,
            }
        }
    }
    state.listed_bookings = Some(listed);
    // The ids to (re)read.
    let mut holds = BTreeSet::new();
    let mut bookings = BTreeSet::new();
    for op in ops
        .iter()
        .filter(|op| full || op.id >= from || op.settled.is_some())
    {
        match (&op.request, op.ok()) {
            (Request::Hold(_), Some(b)) => holds.extend(b["id"].as_str().map(str::to_string)),
            (Request::Buy(_), Some(b)) => bookings.extend(b["id"].as_str().map(str::to_string)),
            (Request::Confirm { hold }, body) => {
                holds.insert(hold.clone());
                if let Some(b) = body {
                    bookings.extend(b["id"].as_str().map(str::to_string));
                }
            }
            (Request::Release { hold }, _) => {
                holds.insert(hold.clone());
            }
            (Request::Cancel { booking }, _) => {
                bookings.insert(booking.clone());
            }
            _ => {}
        }
    }
    // Every listed booking is read (a phantom one included) and every hold a booking came
    // from, so the live objects are complete.
    if let Some(listed) = &state.listed_bookings {
        bookings.extend(
            listed
                .iter()
                .filter(|b| !state.bookings.contains_key(*b))
                .cloned(),
        );
    }
    let read = |path: String| -> Option<ObjectState> {
        let answer = c.read(i, &path);
        match answer.status {
            200 => Some(ObjectState::from_json(&answer.body)),
            404 => None,
            other => panic!("node {i}: GET {path}: {other} {}", answer.body),
        }
    };
    for id in bookings {
        let s = read(format!("/v1/bookings/{id}"));
        state.bookings.insert(id, s);
    }
    for id in holds {
        let s = read(format!("/v1/holds/{id}"));
        state.holds.insert(id, s);
    }
}

/// Quiets the clients, settles unknowns, waits for one applied position, reads every node
/// and checks the history. Panics with the violations.
fn heal_and_check(sale: &Sale, states: &mut States, what: &str, full: bool) {
    sale.quiet.store(true, Ordering::Release);
    let deadline = Instant::now() + REQUEST_TIMEOUT * 3;
    while sale.in_flight.load(Ordering::Acquire) > 0 {
        assert!(Instant::now() < deadline, "clients did not go quiet");
        std::thread::sleep(Duration::from_millis(5));
    }
    sale.cluster.leaders();
    let retried = settle(sale);
    let caught_up = sale.cluster.converge();
    let ops = sale.history.ops();
    if states.nodes.is_empty() {
        states.nodes = (1..=NODES).map(|_| NodeState::default()).collect();
    }
    let from = states.read_up_to;
    for i in 1..=NODES {
        read_node(
            sale,
            i,
            &mut states.nodes[(i - 1) as usize],
            &ops,
            from,
            full,
        );
    }
    states.read_up_to = ops.len();
    let violations = check(&ops, &states.nodes);
    let acked = ops
        .iter()
        .filter(|o| o.request.is_write() && o.ok().is_some())
        .count();
    let listed = states.nodes[0]
        .listed_bookings
        .as_ref()
        .map_or(0, BTreeSet::len);
    println!(
        "check after {what}: {} ops, {acked} writes acknowledged, {retried} unknown retried, \
         converged in {caught_up:?}, applied {:?}, {listed} bookings listed, {} holds read \
         per node: {}",
        ops.len(),
        states.nodes[0].applied,
        states.nodes[0].holds.len(),
        if violations.is_empty() {
            "ok".to_string()
        } else {
            summary(&violations)
        }
    );
    if !violations.is_empty() {
        for v in violations.iter().take(40) {
            println!("  {:?}: {}", v.rule, v.detail);
        }
        panic!(
            "the checker found {} violations after {what} ({})",
            violations.len(),
            summary(&violations)
        );
    }
    sale.quiet.store(false, Ordering::Release);
}

/// Creates one event per shard (ids chosen by the routing function), retrying on 503.
fn create_events(cluster: &Cluster, ga_capacity: u64) -> Vec<String> {
    let mut events = Vec::new();
    for shard in 0..SHARDS {
        let id = (0..1000)
            .map(|n| format!("sale-{n}"))
            .find(|id| shard_for_event(id, SHARDS) == shard)
            .expect("an id for every shard");
        let rows: Vec<Value> = ROWS
            .iter()
            .map(|r| json!({"label": r, "count": SEATS_PER_ROW}))
            .collect();
        let body = json!({
            "id": id, "name": "Cluster sale", "hold_ttl_seconds": TTL_SECONDS,
            "sections": [
                {"id": "hall", "name": "Hall", "price_cents": 100, "seats": {"rows": rows}},
                {"id": "ga", "name": "Floor", "price_cents": 50, "capacity": ga_capacity},
            ]
        })
        .to_string();
        let auth = format!("Bearer {ADMIN}");
        let key = format!("create-{id}");
        let headers = [
            ("authorization", auth.as_str()),
            ("idempotency-key", key.as_str()),
        ];
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let mut node = 1;
        loop {
            let answer = cluster.hosts.http(
                node,
                "POST",
                "/v1/events",
                &headers,
                Some(&body),
                REQUEST_TIMEOUT,
            );
            match answer {
                Ok(a) if a.status == 201 => break,
                other => assert!(
                    Instant::now() < deadline,
                    "event {id} not created: {other:?}"
                ),
            }
            node = node % NODES + 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        events.push(id);
    }
    events
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Isolate,
    OneWay,
    Pause,
}

/// The faults in an interleaved order (each kind spread over the run), so a campaign cut
/// short by its time budget has run some of each.
fn schedule(counts: &[(Fault, u64)]) -> Vec<Fault> {
    let mut all: Vec<(f64, Fault)> = Vec::new();
    for &(fault, n) in counts {
        for k in 0..n {
            all.push(((k as f64 + 0.5) / n as f64, fault));
        }
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all.into_iter().map(|(_, f)| f).collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The first acknowledged write on `shard` sent after `since`, and when its answer came.
fn first_ack_after(sale: &Sale, shard: usize, since: Micros) -> Option<Micros> {
    sale.history.scan(|ops| {
        ops.iter()
            .rev()
            .take_while(|op| {
                op.start >= since.saturating_sub(2 * REQUEST_TIMEOUT.as_micros() as u64)
            })
            .filter(|op| op.request.is_write() && op.end != Micros::MAX && op.start >= since)
            .filter(|op| matches!(op.outcome, Outcome::Ok(_)))
            .filter(|op| sale.shard_of(op) == Some(shard))
            .map(|op| op.end)
            .min()
    })
}

/// How the writes on `shard` sent after `since` ended: (node, status or error) → count.
fn outcomes_since(sale: &Sale, shard: usize, since: Micros) -> BTreeMap<(u64, String), usize> {
    sale.history.scan(|ops| {
        let mut counts = BTreeMap::new();
        for op in ops
            .iter()
            .filter(|op| op.start >= since && op.request.is_write())
        {
            if sale.shard_of(op) != Some(shard) {
                continue;
            }
            let what = match &op.outcome {
                Outcome::Ok(_) => "ok".to_string(),
                Outcome::Failed { status, code } => format!("{status} {code}"),
                Outcome::Unknown { why } => format!("unknown: {why}"),
                Outcome::Pending => "pending".to_string(),
            };
            let what: String = what.chars().take(120).collect();
            *counts.entry((op.node, what)).or_default() += 1;
        }
        counts
    })
}

/// Waits (≤ 30 s) for an acknowledged write on `shard` after `since`.
fn wait_first_ack(sale: &Sale, shard: usize, since: Micros) -> Option<Duration> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    while Instant::now() < deadline {
        if let Some(end) = first_ack_after(sale, shard, since) {
            return Some(Duration::from_micros(end - since));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn faults_lose_no_acknowledgement() {
    if !netns::available() {
        return;
    }
    let kills = env_or("BOXOFFICE_CAMPAIGN_KILLS", 5);
    let isolations = env_or("BOXOFFICE_CAMPAIGN_ISOLATIONS", 1);
    let oneway = env_or("BOXOFFICE_CAMPAIGN_ONEWAY", 1);
    let pauses = env_or("BOXOFFICE_CAMPAIGN_PAUSES", 2);
    let budget = Duration::from_secs(env_or("BOXOFFICE_CAMPAIGN_SECONDS", 200));
    let isolation = Duration::from_millis(env_or("BOXOFFICE_CAMPAIGN_ISOLATION_MS", 3000));
    let pause = Duration::from_millis(env_or("BOXOFFICE_CAMPAIGN_PAUSE_MS", 1500));
    let clients = env_or("BOXOFFICE_CAMPAIGN_CLIENTS", 3) as usize;
    let seed = seed_or(0x17c1);
    println!(
        "seed {seed} (BOXOFFICE_SEED={seed} repeats it): {kills} kills, {isolations} \
         isolations, {oneway} one-way partitions, {pauses} pauses, budget {budget:?}"
    );
    let started = Instant::now();
    let cluster = Cluster::start();
    cluster.leaders();
    let ga_capacity = (budget.as_secs() * GA_TICKETS_PER_BUDGET_SECOND).max(GA_CAPACITY_MIN);
    let events = create_events(&cluster, ga_capacity);
    let shard = events
        .iter()
        .map(|e| (e.clone(), shard_for_event(e, SHARDS)))
        .collect();
    let sale = Sale {
        cluster,
        history: History::new(),
        wires: Mutex::new(HashMap::new()),
        events,
        shard,
        stop: AtomicBool::new(false),
        quiet: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
    };
    let plan = schedule(&[
        (Fault::Kill, kills),
        (Fault::Isolate, isolations),
        (Fault::OneWay, oneway),
        (Fault::Pause, pauses),
    ]);
    let mut rng = Rng::new(seed);
    let mut failovers: Vec<Duration> = Vec::new();
    let mut rejoins: Vec<Duration> = Vec::new();
    let mut done: BTreeMap<String, u64> = BTreeMap::new();
    let mut states = States::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let sale = &sale;
                scope.spawn(move || client(sale, c, seed))
            })
            .collect();
        // Stop the clients whatever happens below (a panic included).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&sale.stop);
        std::thread::sleep(Duration::from_secs(2));
        heal_and_check(&sale, &mut states, "warm-up", false);
        for (n, fault) in plan.iter().enumerate() {
            if started.elapsed() > budget {
                println!(
                    "time budget {budget:?} spent after {n} of {} faults",
                    plan.len()
                );
                break;
            }
            let shard = rng.below(SHARDS as u64) as usize;
            let leader = sale.cluster.leaders()[shard];
            let others: Vec<u64> = (1..=NODES).filter(|&i| i != leader).collect();
            std::thread::sleep(Duration::from_millis(300 + rng.below(700)));
            let what = match fault {
                Fault::Kill => {
                    let at = sale.history.now();
                    sale.cluster.hosts.kill9(leader);
                    let failover = wait_first_ack(&sale, shard, at);
                    std::thread::sleep(DOWN.saturating_sub(failover.unwrap_or(Duration::ZERO)));
                    let back = Instant::now();
                    sale.cluster.spawn(leader);
                    sale.cluster.rejoin(leader);
                    let rejoin = back.elapsed();
                    println!(
                        "kill {}: shard {shard} leader node {leader}: first acknowledged \
                         write on the shard {failover:?} after kill -9; restarted node \
                         caught up in {rejoin:?}",
                        done.get("kill").copied().unwrap_or(0) + 1
                    );
                    let failover = failover.unwrap_or_else(|| {
                        panic!(
                            "no write acknowledged on shard {shard} within 30 s of the kill; \
                             its writes since, by node and outcome: {:?}",
                            outcomes_since(&sale, shard, at)
                        )
                    });
                    failovers.push(failover);
                    rejoins.push(rejoin);
                    format!("kill -9 of node {leader} (shard {shard} leader)")
                }
                Fault::Isolate => {
                    sale.cluster.hosts.isolate(leader);
                    std::thread::sleep(isolation);
                    sale.cluster.hosts.heal();
                    format!("isolation of node {leader} (shard {shard} leader) for {isolation:?}")
                }
                Fault::OneWay => {
                    // The followers drop what the leader sends; the leader still hears them.
                    for &f in &others {
                        sale.cluster.hosts.block(leader, f);
                    }
                    std::thread::sleep(isolation);
                    sale.cluster.hosts.heal();
                    format!("one-way partition from node {leader} (shard {shard} leader)")
                }
                Fault::Pause => {
                    sale.cluster.hosts.pause(leader);
                    std::thread::sleep(pause);
                    sale.cluster.hosts.resume(leader);
                    format!("SIGSTOP of node {leader} (shard {shard} leader) for {pause:?}")
                }
            };
            *done.entry(format!("{fault:?}").to_lowercase()).or_default() += 1;
            heal_and_check(&sale, &mut states, &what, false);
        }
        heal_and_check(
            &sale,
            &mut states,
            "the last fault (every object re-read)",
            true,
        );
        sale.stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("a client thread panicked");
        }
    });
    failovers.sort();
    rejoins.sort();
    let ops = sale.history.ops();
    let unknown = ops.iter().filter(|o| o.settled.is_some()).count();
    println!(
        "campaign verdict: 0 violations over {} ops ({unknown} unknown outcomes settled); \
         faults {done:?} in {:?}",
        ops.len(),
        started.elapsed()
    );
    println!(
        "failover (kill -9 to first acknowledged write on the shard) over {} kills: p50 {:?}, \
         max {:?}; rejoin p50 {:?}, max {:?}",
        failovers.len(),
        percentile(&failovers, 0.5),
        failovers.last().copied().unwrap_or_default(),
        percentile(&rejoins, 0.5),
        rejoins.last().copied().unwrap_or_default(),
    );
    // Something was sold, or the run proved nothing.
    assert!(
        ops.iter().any(
            |o| matches!(o.request, Request::Confirm { .. } | Request::Buy(_)) && o.ok().is_some()
        ),
        "no booking was ever acknowledged"
    );
}

/// The hosts without cluster mode: a single-node server in one namespace, reached from the
/// clients' namespace; a one-way block, an isolation, a pause and a kill cut it off and
/// healing brings it back. This checks the harness itself.
#[test]
fn hosts_are_separate_and_faults_cut_them() {
    if !netns::available() {
        return;
    }
    let hosts = Hosts::new(NODES);
    let dir = hosts.dir().join("single");
    let args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        format!("{}:{}", hosts.ip(2), netns::HTTP_PORT),
        "--data-dir".into(),
        dir.display().to_string(),
    ];
    let env = [
        ("BOXOFFICE_ADMIN_TOKEN", ADMIN),
        ("BOXOFFICE_JWT_SECRET", SECRET),
    ];
    hosts.spawn(2, &harness::binary(), &args, &env);
    let health = |timeout: Duration| hosts.http(2, "GET", "/health", &[], None, timeout);
    let up = |hosts: &Hosts| {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        while Instant::now() < deadline {
            if hosts
                .http(2, "GET", "/health", &[], None, Duration::from_secs(1))
                .is_ok_and(|a| a.status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node 2 did not answer /health:\n{}", hosts.log_tail(2));
    };
    up(&hosts);
    // Node 1 reaches node 2 over the bridge (bash's /dev/tcp inside n1's namespace).
    let connect_from = |from: u64| {
        let script = format!("exec 3<>/dev/tcp/{}/{}", hosts.ip(2), netns::HTTP_PORT);
        std::process::Command::new("timeout")
            .args([
                "2",
                "ip",
                "netns",
                "exec",
                &hosts.node_ns(from),
                "bash",
                "-c",
                &script,
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(connect_from(1), "node 1 reaches node 2");
    assert!(connect_from(3), "node 3 reaches node 2");
    // One way: node 2 drops what node 1 sends.
    hosts.block(1, 2);
    assert!(
        !connect_from(1),
        "the block cuts node 1 off node 2: {:?}",
        hosts.rules()
    );
    assert!(connect_from(3), "node 3 is not blocked");
    hosts.heal();
    assert!(connect_from(1), "healed");
    // Isolation: no node reaches node 2, the clients still do.
    hosts.isolate(2);
    assert!(
        !connect_from(1) && !connect_from(3),
        "isolated: {:?}",
        hosts.rules()
    );
    assert_eq!(health(REQUEST_TIMEOUT).map(|a| a.status).ok(), Some(200));
    hosts.heal();
    assert!(connect_from(1) && connect_from(3), "healed");
    // A paused node accepts connections (the kernel does) but never answers.
    hosts.pause(2);
    let paused = health(Duration::from_millis(700));
    assert!(paused.as_ref().is_err_and(|e| e.sent), "{paused:?}");
    hosts.resume(2);
    assert_eq!(health(REQUEST_TIMEOUT).map(|a| a.status).ok(), Some(200));
    // A killed node refuses connections: nothing was sent.
    hosts.kill9(2);
    let dead = health(Duration::from_secs(1));
    assert!(dead.as_ref().is_err_and(|e| !e.sent), "{dead:?}");
    hosts.spawn(2, &harness::binary(), &args, &env);
    up(&hosts);
    let names = [hosts.node_ns(1), hosts.client_ns()];
    drop(hosts);
    for name in names {
        assert!(
            !std::path::Path::new(&format!("/run/netns/{name}")).exists(),
            "{name} was removed"
        );
    }
}
