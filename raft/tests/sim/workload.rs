//! The simulation's workload: on every node, one driver per shard modelled on the server's
//! shard driver (server/src/cluster.rs). While its node leads the shard it takes a leader
//! token (`begin_term`), decides commands on a copy of the committed engine, proposes each
//! batch of encoded decisions and records the batch as acknowledged only once `propose`
//! returned `Ok`; on any error it drops the copy and starts again from what is committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::{
    Actor, BookingId, BookingView, Command, Decided, Engine, HoldId, HoldView, ItemRequest, Layout,
    NewEvent, NewHold, NewRow, NewSection, Output,
};
use parking_lot::Mutex;
use raft::{Group, NodeId};
use rand::rngs::StdRng;
use rand::Rng;

/// Engine time at the simulation's start (engine time = this + virtual elapsed time).
pub const T0_MS: u64 = 1_700_000_000_000;
/// The event every shard sells.
pub const EVENT: &str = "show";
/// Hold TTL of the event: short, so holds expire during a seed.
const HOLD_TTL_MS: u64 = 1_000;

/// A deliberate bug, to show that the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// The driver as the server has it.
    None,
    /// Acknowledge a batch before `propose` returns (as if answering the client early).
    AckBeforePropose,
    /// Keep deciding on the same copy after a failed proposal (no rebuild from committed).
    KeepCopyOnError,
}

/// An acknowledged effect, as the client saw it.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A hold was placed or released.
    Hold(HoldView),
    /// A booking was made or cancelled.
    Booking(BookingView),
}

/// One acknowledged batch.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The node that led.
    pub node: NodeId,
    /// Its log index (`None` only under [`Sabotage::AckBeforePropose`]).
    pub index: Option<u64>,
    /// The encoded decisions proposed.
    pub decisions: Vec<Vec<u8>>,
    /// What the client was told.
    pub effects: Vec<Effect>,
}

/// Everything one shard's drivers saw, for the checks.
#[derive(Default)]
pub struct Record {
    /// Acknowledged batches, in acknowledgement order.
    pub acks: Vec<Ack>,
    /// Proposals that failed.
    pub failed: u64,
    /// Terms a driver began (`begin_term` returned a token).
    pub terms: u64,
    /// Acknowledgements where the leader's committed engine was compared with its copy.
    pub compared: u64,
    /// Acknowledgements where they differed (a breach).
    pub mismatches: Vec<String>,
    /// Hold and booking ids ever decided on any copy of the shard (the commands' targets).
    pub holds: Vec<HoldId>,
    /// See `holds`.
    pub bookings: Vec<BookingId>,
}

/// One driver: shard `shard` on node `node`.
pub struct Driver {
    pub shard: u16,
    pub node: NodeId,
    pub group: Arc<Group>,
    pub record: Arc<Mutex<Record>>,
    pub rng: StdRng,
    pub t0: tokio::time::Instant,
    pub stop: Arc<AtomicBool>,
    pub sabotage: Sabotage,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Driver {
    fn clock(&self) -> u64 {
        T0_MS + self.t0.elapsed().as_millis() as u64
    }

    /// Runs until told to stop (or aborted, as a crash does).
    pub async fn run(mut self) {
        let mut kept: Option<Engine> = None;
        while !self.stop.load(Ordering::Relaxed) {
            if !self.group.leadership().is_me {
                tokio::time::sleep(ms(self.rng.random_range(5..20))).await;
                continue;
            }
            let token = match self.group.begin_term().await {
                Ok(token) => token,
                Err(_) => {
                    tokio::time::sleep(ms(10)).await;
                    continue;
                }
            };
            self.record.lock().terms += 1;
            let mut spec = match kept.take() {
                Some(engine) if self.sabotage == Sabotage::KeepCopyOnError => engine,
                _ => self.group.state_machine().with(|c| c.engine.clone()),
            };
            while !self.stop.load(Ordering::Relaxed) {
                let now = self.clock().max(spec.now_ms());
                let (records, effects) = self.decide_batch(&mut spec, now);
                if records.is_empty() {
                    tokio::time::sleep(ms(self.rng.random_range(5..30))).await;
                    continue;
                }
                if self.sabotage == Sabotage::AckBeforePropose {
                    self.acknowledge(None, records.clone(), effects.clone(), &spec);
                }
                match self.group.propose(&token, records.clone()).await {
                    Ok(index) => {
                        if self.sabotage != Sabotage::AckBeforePropose {
                            self.acknowledge(Some(index), records, effects, &spec);
                        }
                    }
                    Err(_) => {
                        self.record.lock().failed += 1;
                        kept = Some(spec);
                        break;
                    }
                }
                tokio::time::sleep(ms(self.rng.random_range(5..40))).await;
            }
        }
    }

    fn acknowledge(
        &self,
        index: Option<u64>,
        decisions: Vec<Vec<u8>>,
        effects: Vec<Effect>,
        spec: &Engine,
    ) {
        let mut record = self.record.lock();
        if let Some(index) = index {
            // The leader applied its own entry before `propose` returned, and nobody else
            // wrote since: its committed engine must be exactly the copy it decided on.
            let (applied, committed) = self
                .group
                .state_machine()
                .with(|c| (c.applied_index(), c.engine.snapshot()));
            if applied == index {
                record.compared += 1;
                if committed != spec.snapshot() {
                    record.mismatches.push(format!(
                        "shard {} node {}: at index {index} the committed engine differs from \
                         the copy the leader decided on",
                        self.shard, self.node
                    ));
                }
            }
        }
        record.acks.push(Ack {
            node: self.node,
            index,
            decisions,
            effects,
        });
    }

    /// Expires due holds, then decides one to three commands on the copy.
    fn decide_batch(&mut self, spec: &mut Engine, now: u64) -> (Vec<Vec<u8>>, Vec<Effect>) {
        let mut records = Vec::new();
        let mut effects = Vec::new();
        loop {
            let due = spec.decide_expiry(now, engine::limits::EXPIRE_BATCH_MAX);
            if due.is_empty() {
                break;
            }
            for decision in due {
                spec.apply(&decision);
                let mut buf = Vec::new();
                decision.encode(&mut buf);
                records.push(buf);
            }
        }
        let commands = self.rng.random_range(1..=3);
        for _ in 0..commands {
            let command = self.pick(spec);
            let Ok(Decided::Change(decision)) = spec.decide(&command, now) else {
                continue;
            };
            spec.apply(&decision);
            let mut buf = Vec::new();
            decision.encode(&mut buf);
            records.push(buf);
            let mut record = self.record.lock();
            match spec.output(&decision, now) {
                Ok(Output::Hold(hold)) => {
                    record.holds.push(hold.id);
                    effects.push(Effect::Hold(hold));
                }
                Ok(Output::Booking(booking)) => {
                    record.bookings.push(booking.id);
                    effects.push(Effect::Booking(booking));
                }
                // A refusal remembered with its key changes nothing to follow.
                Ok(Output::Event(_) | Output::Entry(_)) | Err(_) => {}
            }
        }
        (records, effects)
    }

    fn pick(&mut self, spec: &Engine) -> Command {
        if spec.event(EVENT).is_none() {
            return create_event();
        }
        let record = self.record.lock();
        let roll = self.rng.random_range(0..100);
        if roll < 20 && !record.holds.is_empty() {
            let hold = record.holds[self.rng.random_range(0..record.holds.len())];
            return Command::ConfirmHold {
                actor: Actor::Admin,
                hold_id: hold,
                payment_ref: None,
                idempotency: None,
            };
        }
        if roll < 30 && !record.holds.is_empty() {
            let hold = record.holds[self.rng.random_range(0..record.holds.len())];
            return Command::ReleaseHold {
                actor: Actor::Admin,
                hold_id: hold,
                idempotency: None,
            };
        }
        if roll < 38 && !record.bookings.is_empty() {
            let booking = record.bookings[self.rng.random_range(0..record.bookings.len())];
            return Command::CancelBooking {
                actor: Actor::Admin,
                booking_id: booking,
                idempotency: None,
            };
        }
        drop(record);
        let user = format!("u{}", self.rng.random_range(0..6));
        let mut hold = NewHold {
            actor: Actor::User(user.clone()),
            event_id: EVENT.into(),
            user_id: user,
            items: Vec::new(),
            seats: Vec::new(),
            ttl_ms: None,
            payment_ref: None,
            idempotency: None,
        };
        if self.rng.random_bool(0.6) {
            for _ in 0..self.rng.random_range(1..=2) {
                let row = if self.rng.random_bool(0.5) { 'A' } else { 'B' };
                let seat = format!("{row}-{}", self.rng.random_range(1..=6));
                if !hold.seats.contains(&seat) {
                    hold.seats.push(seat);
                }
            }
        } else {
            hold.items.push(ItemRequest {
                section_id: "floor".into(),
                qty: self.rng.random_range(1..=3),
            });
        }
        if roll < 50 {
            Command::Purchase(hold)
        } else {
            Command::PlaceHold(hold)
        }
    }
}

fn create_event() -> Command {
    Command::CreateEvent(NewEvent {
        id: EVENT.into(),
        name: "Show".into(),
        starts_at_ms: None,
        max_per_user: None,
        hold_ttl_ms: Some(HOLD_TTL_MS),
        sections: vec![
            NewSection {
                id: Some("tier".into()),
                name: "Tier".into(),
                price_cents: 2500,
                layout: Layout::Seated {
                    rows: ["A", "B"]
                        .iter()
                        .map(|label| NewRow {
                            label: (*label).into(),
                            count: 6,
                        })
                        .collect(),
                },
            },
            NewSection {
                id: Some("floor".into()),
                name: "Floor".into(),
                price_cents: 1000,
                layout: Layout::General { capacity: 10 },
            },
        ],
        idempotency: None,
    })
}
