//! The seeded simulation of cluster mode: three nodes, one or two shard groups, an
//! in-memory network, and per seed a schedule of faults chosen by the seed's RNG (lost and
//! delayed messages, partitions one way or both, leader isolation, forced elections, node
//! crashes and restarts over the same log with the state machine rebuilt from its snapshot
//! files). Every node runs a shard driver per shard modelled on the server's; after the
//! faults everything is healed and, once the replicas converge, every acknowledged batch is
//! checked on every replica.
//!
//! Time is tokio's paused clock: timers fire in virtual time, so a seed lasts seconds of
//! Raft time and milliseconds of wall time. The fault schedule and the workload come from
//! the seed; openraft's own election jitter does not, so a replay follows the same schedule
//! but not always the same interleaving.
//!
//! `BOXOFFICE_SEED=<n>` runs seed n alone; `BOXOFFICE_SIM_SEEDS=<count>` sets how many
//! seeds run (from `BOXOFFICE_SIM_BASE`, or a base taken from the clock, printed).
//!
//! Checks, per seed: while the faults run, replicas sampled at the same applied index hold
//! byte-equal engines; at each acknowledgement the leader's committed engine equals the copy
//! it decided on; after the heal and convergence, on every replica: the engine's invariants
//! (no seat held or sold twice, counts conserved), equal engines, acknowledged batches at
//! distinct log indices each holding exactly the acknowledged decisions, and every
//! acknowledged hold and booking present as acknowledged, in a state its later acknowledged
//! operations allow. Two more tests plant a bug in the driver and require the checks to
//! catch it.

#[path = "sim/mem_log.rs"]
mod mem_log;
#[path = "sim/net.rs"]
mod net;
#[path = "sim/workload.rs"]
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::{Actor, BookingStatus, HoldStatus};
use mem_log::MemLog;
use net::{Fabric, Weather};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Config, EntryPayload, RaftLogReader, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use raft::state_machine::StateMachine;
use raft::types::Node;
use raft::{Group, NodeId, Raft};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use workload::{Driver, Effect, Record, Sabotage};

/// The nodes of the simulated cluster.
const NODES: [NodeId; 3] = [1, 2, 3];
/// Seeds run when `BOXOFFICE_SIM_SEEDS` is not set (sized for about a minute on two
/// shared cores in release).
const DEFAULT_SEEDS: u64 = 1_000;
/// The longest (virtual) wait for the replicas to converge after the heal.
const CONVERGE_WAIT: Duration = Duration::from_secs(30);
/// Seeds the sabotage tests may try before concluding the checker misses the bug.
const SABOTAGE_SEEDS: u64 = 100;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Production's Raft settings with the simulation's timings: short heartbeats and
/// elections, and snapshots every few entries so that lagging nodes get snapshots.
fn sim_config(rng: &mut StdRng) -> Arc<Config> {
    let config = Config {
        heartbeat_interval: 20,
        election_timeout_min: 100,
        election_timeout_max: 200,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(rng.random_range(4..=40)),
        max_in_snapshot_log_to_keep: rng.random_range(0..=8),
        ..raft::node::raft_config()
    };
    Arc::new(
        config
            .validate()
            .expect("the simulation's Raft config is valid"),
    )
}

/// What one seed did.
#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    acks: u64,
    failed: u64,
    terms: u64,
    compared: u64,
    log_checked: u64,
    sampled: u64,
    crashes: u64,
    isolations: u64,
    elections: u64,
    messages: u64,
    lost: u64,
    snapshots: u64,
}

impl Summary {
    fn add(&mut self, o: &Summary) {
        self.acks += o.acks;
        self.failed += o.failed;
        self.terms += o.terms;
        self.compared += o.compared;
        self.log_checked += o.log_checked;
        self.sampled += o.sampled;
        self.crashes += o.crashes;
        self.isolations += o.isolations;
        self.elections += o.elections;
        self.messages += o.messages;
        self.lost += o.lost;
        self.snapshots += o.snapshots;
    }
}

/// One shard's replica on one node, while the node is up.
struct Replica {
    raft: Raft,
    sm: StateMachine,
    driver: tokio::task::JoinHandle<()>,
}

struct Cluster {
    seed: u64,
    sabotage: Sabotage,
    shards: u16,
    config: Arc<Config>,
    fabric: Arc<Fabric>,
    root: PathBuf,
    logs: BTreeMap<(u16, NodeId), MemLog>,
    up: BTreeMap<(u16, NodeId), Replica>,
    down: BTreeSet<NodeId>,
    records: Vec<Arc<Mutex<Record>>>,
    stop: Arc<AtomicBool>,
    t0: tokio::time::Instant,
    starts: u64,
    /// Engine bytes seen at each (shard, applied index), and on which node first.
    seen: BTreeMap<(u16, u64), (NodeId, Vec<u8>)>,
    /// The first breach found while the faults ran.
    breach: Option<String>,
    summary: Summary,
}

impl Cluster {
    async fn start_node(&mut self, node: NodeId) {
        for shard in 0..self.shards {
            let dir = self
                .root
                .join(format!("node-{node}"))
                .join(format!("shard-{shard}"));
            let sm = StateMachine::open(shard, &dir).expect("the snapshot directory opens");
            let log = self.logs.entry((shard, node)).or_default().clone();
            let raft = Raft::new(
                node,
                Arc::clone(&self.config),
                self.fabric.network(shard, node),
                log,
                sm.clone(),
            )
            .await
            .expect("a simulated node starts");
            self.fabric.register(shard, node, raft.clone());
            self.starts += 1;
            let driver = Driver {
                shard,
                node,
                group: Arc::new(Group::new(shard, node, raft.clone(), sm.clone())),
                record: Arc::clone(&self.records[usize::from(shard)]),
                rng: StdRng::seed_from_u64(self.seed ^ (self.starts << 32)),
                t0: self.t0,
                stop: Arc::clone(&self.stop),
                sabotage: self.sabotage,
            };
            let driver = tokio::spawn(driver.run());
            self.up.insert((shard, node), Replica { raft, sm, driver });
        }
        self.down.remove(&node);
    }

    /// A process crash: every group of the node stops at once, its drivers with it. The
    /// log survives (it is durable); the state machine is rebuilt at restart.
    async fn crash(&mut self, node: NodeId) {
        for shard in 0..self.shards {
            if let Some(replica) = self.up.remove(&(shard, node)) {
                replica.driver.abort();
                self.fabric.unregister(shard, node);
                let _ = replica.raft.shutdown().await;
            }
        }
        self.down.insert(node);
        self.summary.crashes += 1;
    }

    /// Lets `d` of virtual time pass, sampling the replicas four times on the way; the first
    /// breach found is kept for [`Cluster::check`].
    async fn wait(&mut self, d: Duration) {
        for _ in 0..4 {
            tokio::time::sleep(d / 4).await;
            if let Err(e) = self.sample() {
                self.breach.get_or_insert(e);
            }
        }
    }

    /// Samples every live replica now: two replicas (or one at two moments) at the same
    /// applied index must hold byte-equal engines, whatever happened in between.
    fn sample(&mut self) -> Result<(), String> {
        for (&(shard, node), replica) in &self.up {
            let (index, bytes) = replica
                .sm
                .with(|c| (c.applied_index(), c.engine.snapshot()));
            self.summary.sampled += 1;
            match self.seen.get(&(shard, index)) {
                Some((first, seen)) if *seen != bytes => {
                    return Err(format!(
                        "shard {shard}: nodes {first} and {node} applied index {index} with \
                         different engines"
                    ));
                }
                Some(_) => {}
                None => {
                    self.seen.insert((shard, index), (node, bytes));
                }
            }
        }
        Ok(())
    }

    /// The node that leads `shard` in the highest term any live node knows of.
    fn leader(&self, shard: u16) -> Option<NodeId> {
        self.up
            .iter()
            .filter(|((s, _), _)| *s == shard)
            .filter_map(|((_, node), r)| {
                let m = r.raft.metrics().borrow_watched().clone();
                (m.state == ServerState::Leader).then_some((m.current_term, *node))
            })
            .max()
            .map(|(_, node)| node)
    }

    fn random_up(&self, rng: &mut StdRng) -> Option<NodeId> {
        let up: Vec<NodeId> = NODES
            .iter()
            .copied()
            .filter(|n| !self.down.contains(n))
            .collect();
        (!up.is_empty()).then(|| up[rng.random_range(0..up.len())])
    }

    /// One fault, chosen by the RNG, held for a while and then undone (a crashed node is
    /// restarted by a later step or by the heal).
    async fn fault(&mut self, rng: &mut StdRng, baseline: Weather) {
        let shard = rng.random_range(0..self.shards);
        let hold = ms(rng.random_range(50..1_200));
        match rng.random_range(0..8) {
            0 => {
                self.fabric.set_weather(Weather {
                    drop_per_mille: rng.random_range(50..400),
                    delay_max_ms: rng.random_range(0..80),
                });
                self.wait(hold).await;
                self.fabric.set_weather(baseline);
            }
            1 | 2 => {
                // Isolate the leader (a forced leader change), or any node.
                let target = match self.leader(shard) {
                    Some(l) if rng.random_bool(0.7) => Some(l),
                    _ => self.random_up(rng),
                };
                if let Some(node) = target {
                    self.summary.isolations += 1;
                    self.fabric.isolate(node, &NODES);
                    self.wait(hold).await;
                    self.fabric.heal();
                }
            }
            3 => {
                // A one-way partition between the leader and a follower.
                if let Some(leader) = self.leader(shard) {
                    let other = NODES[rng.random_range(0..NODES.len())];
                    if other != leader {
                        if rng.random_bool(0.5) {
                            self.fabric.cut(leader, other);
                        } else {
                            self.fabric.cut(other, leader);
                        }
                        self.wait(hold).await;
                        self.fabric.heal();
                    }
                }
            }
            4 | 5 => {
                // Crash the leader (or any node); restart it after a while, or leave it
                // down for the next steps.
                let target = match self.leader(shard) {
                    Some(l) if rng.random_bool(0.8) => Some(l),
                    _ => self.random_up(rng),
                };
                if let Some(node) = target {
                    self.crash(node).await;
                    self.wait(hold).await;
                    if rng.random_bool(0.7) {
                        self.start_node(node).await;
                    }
                }
            }
            6 => {
                // A forced election on a follower: its term rises and the leader steps down.
                let leader = self.leader(shard);
                let followers: Vec<NodeId> = NODES
                    .iter()
                    .copied()
                    .filter(|n| Some(*n) != leader && !self.down.contains(n))
                    .collect();
                if !followers.is_empty() {
                    let node = followers[rng.random_range(0..followers.len())];
                    if let Some(r) = self.up.get(&(shard, node)) {
                        self.summary.elections += 1;
                        let _ = r.raft.trigger().elect(false).await;
                    }
                }
                self.wait(hold / 4).await;
            }
            _ => {
                // Restart every crashed node (or just let the workload run).
                let down: Vec<NodeId> = self.down.iter().copied().collect();
                for node in down {
                    self.start_node(node).await;
                }
                self.wait(hold).await;
            }
        }
    }

    /// Heals everything, stops the workload and waits until, in every shard, a leader is
    /// known and every replica holds and has applied its whole log.
    async fn heal_and_converge(&mut self) -> Result<(), String> {
        self.fabric.heal();
        self.fabric.set_weather(Weather::default());
        let down: Vec<NodeId> = self.down.iter().copied().collect();
        for node in down {
            self.start_node(node).await;
        }
        // Let the workload run on the healed cluster for a moment, then stop it.
        self.wait(ms(300)).await;
        self.stop.store(true, Ordering::Relaxed);
        for replica in self.up.values() {
            replica.driver.abort();
        }
        let started = tokio::time::Instant::now();
        loop {
            let mut lagging = Vec::new();
            for shard in 0..self.shards {
                let metrics: Vec<_> = NODES
                    .iter()
                    .map(|n| {
                        self.up[&(shard, *n)]
                            .raft
                            .metrics()
                            .borrow_watched()
                            .clone()
                    })
                    .collect();
                let leader = metrics.iter().find(|m| m.state == ServerState::Leader);
                let done = leader.is_some_and(|l| {
                    metrics.iter().all(|m| {
                        m.last_log_index == l.last_log_index
                            && m.last_applied.map(|id| id.index) == l.last_log_index
                            && m.current_leader == Some(l.id)
                    })
                });
                if !done {
                    lagging.push(format!(
                        "shard {shard}: {}",
                        metrics
                            .iter()
                            .map(|m| format!(
                                "node {} {:?} term {} leader {:?} log {:?} applied {:?}",
                                m.id,
                                m.state,
                                m.current_term,
                                m.current_leader,
                                m.last_log_index,
                                m.last_applied.map(|id| id.index)
                            ))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                }
            }
            self.sample()?;
            if lagging.is_empty() {
                return Ok(());
            }
            if started.elapsed() > CONVERGE_WAIT {
                return Err(format!(
                    "no convergence within {} s of the heal: {}",
                    CONVERGE_WAIT.as_secs(),
                    lagging.join(" | ")
                ));
            }
            tokio::time::sleep(ms(20)).await;
        }
    }

    /// Every check of the seed, on every replica of every shard.
    async fn check(&mut self) -> Result<(), String> {
        if let Some(breach) = self.breach.take() {
            return Err(breach);
        }
        for shard in 0..self.shards {
            // The drivers are stopped: take what they recorded.
            let record = std::mem::take(&mut *self.records[usize::from(shard)].lock());
            if let Some(m) = record.mismatches.first() {
                return Err(m.clone());
            }
            // Equal applied index (they all are, after convergence) means equal bytes, and
            // every replica keeps the engine's invariants (no seat held or sold twice).
            let states: Vec<(NodeId, u64, engine::Engine)> = NODES
                .iter()
                .map(|n| {
                    let (applied, engine) = self.up[&(shard, *n)]
                        .sm
                        .with(|c| (c.applied_index(), c.engine.clone()));
                    (*n, applied, engine)
                })
                .collect();
            for (node, _, engine) in &states {
                let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    engine.check_invariants();
                }));
                if checked.is_err() {
                    return Err(format!(
                        "shard {shard} node {node}: the engine's invariants do not hold"
                    ));
                }
            }
            let (first, first_applied, first_engine) = &states[0];
            let first_bytes = first_engine.snapshot();
            for (node, applied, engine) in &states[1..] {
                if applied == first_applied && engine.snapshot() != first_bytes {
                    return Err(format!(
                        "shard {shard}: nodes {first} and {node} both applied index {applied} \
                         but their engines differ"
                    ));
                }
            }
            // Acknowledged batches have distinct log indices, and the entry at each index
            // holds exactly the acknowledged decisions on every replica (unless the entry
            // is already compacted into a snapshot).
            let mut at: BTreeMap<u64, NodeId> = BTreeMap::new();
            for ack in record.acks.iter() {
                let Some(index) = ack.index else { continue };
                if let Some(other) = at.insert(index, ack.node) {
                    return Err(format!(
                        "shard {shard}: two acknowledged batches at log index {index} \
                         (leaders {other} and {})",
                        ack.node
                    ));
                }
                for node in NODES {
                    let mut log = self.logs[&(shard, node)].clone();
                    let entries = log
                        .try_get_log_entries(index..=index)
                        .await
                        .map_err(|e| e.to_string())?;
                    let Some(entry) = entries.first() else {
                        continue;
                    };
                    self.summary.log_checked += 1;
                    let same = match &entry.payload {
                        EntryPayload::Normal(batch) => batch.decisions == ack.decisions,
                        _ => false,
                    };
                    if !same {
                        return Err(format!(
                            "shard {shard} node {node}: log index {index} does not hold the \
                             batch acknowledged there by leader {}",
                            ack.node
                        ));
                    }
                }
            }
            // Every acknowledged hold and booking is on every replica, as acknowledged, in
            // a state its later acknowledged operations allow.
            let mut holds = BTreeMap::new();
            let mut bookings = BTreeMap::new();
            for effect in record.acks.iter().flat_map(|a| a.effects.iter()) {
                match effect {
                    Effect::Hold(h) => {
                        holds.insert(h.id, h.clone());
                    }
                    Effect::Booking(b) => {
                        bookings.insert(b.id, b.clone());
                    }
                }
            }
            for (node, _, engine) in &states {
                let now = engine.now_ms();
                for (id, acked) in &holds {
                    let hold = engine.hold(*id, &Actor::Admin, now).map_err(|e| {
                        format!(
                            "shard {shard} node {node}: acknowledged hold {id} is missing: {e:?}"
                        )
                    })?;
                    let same = hold.user_id == acked.user_id
                        && hold.items == acked.items
                        && hold.seats == acked.seats
                        && hold.total_cents == acked.total_cents
                        && hold.created_at_ms == acked.created_at_ms;
                    let allowed = match acked.status {
                        HoldStatus::Held => true,
                        status => hold.status == status,
                    };
                    if !same || !allowed {
                        return Err(format!(
                            "shard {shard} node {node}: hold {id} is {hold:?}, acknowledged as \
                             {acked:?}"
                        ));
                    }
                }
                for (id, acked) in &bookings {
                    let booking = engine.booking(*id, &Actor::Admin).map_err(|e| {
                        format!(
                            "shard {shard} node {node}: acknowledged booking {id} is missing: {e:?}"
                        )
                    })?;
                    let same = booking.hold_id == acked.hold_id
                        && booking.user_id == acked.user_id
                        && booking.items == acked.items
                        && booking.seats == acked.seats
                        && booking.created_at_ms == acked.created_at_ms;
                    let allowed = match acked.status {
                        BookingStatus::Confirmed => true,
                        BookingStatus::Cancelled => booking.status == BookingStatus::Cancelled,
                    };
                    if !same || !allowed {
                        return Err(format!(
                            "shard {shard} node {node}: booking {id} is {booking:?}, \
                             acknowledged as {acked:?}"
                        ));
                    }
                }
            }
            self.summary.acks += record.acks.len() as u64;
            self.summary.failed += record.failed;
            self.summary.terms += record.terms;
            self.summary.compared += record.compared;
        }
        let traffic = self.fabric.traffic();
        self.summary.messages = traffic.sent;
        self.summary.lost = traffic.lost;
        self.summary.snapshots = traffic.snapshots;
        Ok(())
    }

    async fn shutdown(&mut self) {
        let keys: Vec<_> = self.up.keys().copied().collect();
        for key in keys {
            if let Some(replica) = self.up.remove(&key) {
                replica.driver.abort();
                let _ = replica.raft.shutdown().await;
            }
        }
    }
}

/// One seed: start, run the workload under the seed's faults, heal, converge, check.
async fn scenario(seed: u64, sabotage: Sabotage, root: PathBuf) -> Result<Summary, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let shards = rng.random_range(1..=2u16);
    let config = sim_config(&mut rng);
    let mut cluster = Cluster {
        seed,
        sabotage,
        shards,
        config,
        fabric: Fabric::new(rng.random()),
        root,
        logs: BTreeMap::new(),
        up: BTreeMap::new(),
        down: BTreeSet::new(),
        records: (0..shards).map(|_| Arc::default()).collect(),
        stop: Arc::new(AtomicBool::new(false)),
        t0: tokio::time::Instant::now(),
        starts: 0,
        seen: BTreeMap::new(),
        breach: None,
        summary: Summary::default(),
    };
    for node in NODES {
        cluster.start_node(node).await;
    }
    let members: BTreeMap<NodeId, Node> = NODES
        .iter()
        .map(|n| {
            (
                *n,
                Node {
                    http: format!("node-{n}:http"),
                    raft: format!("node-{n}:raft"),
                },
            )
        })
        .collect();
    for shard in 0..shards {
        let first = NODES[rng.random_range(0..NODES.len())];
        cluster.up[&(shard, first)]
            .raft
            .initialize(members.clone())
            .await
            .map_err(|e| format!("shard {shard}: initialize: {e}"))?;
    }
    let baseline = if rng.random_bool(0.5) {
        Weather {
            drop_per_mille: rng.random_range(0..60),
            delay_max_ms: rng.random_range(0..30),
        }
    } else {
        Weather::default()
    };
    cluster.fabric.set_weather(baseline);
    cluster.wait(ms(rng.random_range(200..600))).await;
    for _ in 0..rng.random_range(2..=5) {
        cluster.fault(&mut rng, baseline).await;
        cluster.wait(ms(rng.random_range(0..300))).await;
    }
    let outcome = match cluster.heal_and_converge().await {
        Ok(()) => cluster.check().await,
        Err(e) => Err(e),
    };
    cluster.shutdown().await;
    outcome.map(|()| cluster.summary)
}

/// Runs one seed on its own runtime with a paused clock.
fn run_seed(seed: u64, sabotage: Sabotage) -> Result<Summary, String> {
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        // Snapshot files fsync: on tmpfs that costs nothing.
        true => tempfile::tempdir_in("/dev/shm"),
        false => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    // A replica that panics while applying (openraft applies on the caller's task when a
    // node starts) fails the seed like any other breach.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(scenario(seed, sabotage, dir.path().to_path_buf()))
    }));
    match outcome {
        Ok(result) => result,
        Err(panic) => Err(format!("a panic: {}", panic_message(&*panic))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")),
    )
}

#[test]
fn seeded_simulation() {
    let seeds: Vec<u64> = match env_u64("BOXOFFICE_SEED") {
        Some(seed) => vec![seed],
        None => {
            let count = env_u64("BOXOFFICE_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
            let base = env_u64("BOXOFFICE_SIM_BASE").unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("the clock is after 1970");
                (now.as_secs() % 1_000_000) * 1_000
            });
            (base..base + count).collect()
        }
    };
    println!(
        "sim: {} seeds from {} (replay one with BOXOFFICE_SEED=<seed>)",
        seeds.len(),
        seeds[0]
    );
    let started = std::time::Instant::now();
    let mut total = Summary::default();
    for &seed in &seeds {
        match run_seed(seed, Sabotage::None) {
            Ok(summary) => total.add(&summary),
            Err(e) => panic!(
                "sim: seed {seed} failed: {e}\nreplay: BOXOFFICE_SEED={seed} cargo test \
                 --release -p boxoffice-raft --test sim seeded_simulation"
            ),
        }
    }
    println!(
        "sim: {} seeds passed in {:.1} s: {total:?}",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(total.acks > 0, "no batch was ever acknowledged");
    if seeds.len() >= 50 {
        // Over many seeds every kind of fault happened and was survived.
        assert!(total.crashes > 0 && total.isolations > 0 && total.elections > 0);
        assert!(
            total.failed > 0,
            "no proposal ever failed: the faults did nothing"
        );
        assert!(total.compared > 0 && total.log_checked > 0 && total.sampled > 0);
        assert!(
            total.snapshots > 0,
            "no follower ever caught up from a snapshot"
        );
    }
}

/// The checker is not blind: with a deliberate bug in the driver, some seed fails.
fn sabotage_is_caught(sabotage: Sabotage) {
    let base = env_u64("BOXOFFICE_SIM_BASE").unwrap_or(0);
    for seed in base..base + SABOTAGE_SEEDS {
        if let Err(e) = run_seed(seed, sabotage) {
            println!("sim: {sabotage:?} caught at seed {seed}: {e}");
            return;
        }
    }
    panic!("{sabotage:?} passed {SABOTAGE_SEEDS} seeds: the checker does not see it");
}

#[test]
fn checker_catches_an_acknowledgement_before_the_proposal_returns() {
    sabotage_is_caught(Sabotage::AckBeforePropose);
}

#[test]
fn checker_catches_a_leader_that_keeps_its_copy_after_a_failed_proposal() {
    sabotage_is_caught(Sabotage::KeepCopyOnError);
}
