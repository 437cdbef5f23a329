//! A shard's follower: a thread with its own copy of the shard's engine, fed every batch of
//! decisions once the shard has made it durable, that runs observers against that copy off
//! the shard thread (the live-availability stream; a snapshot writer can be another).
//!
//! The shard never waits for it. Right after a batch's fdatasync the shard hands over the
//! batch's encoded records with `try_send` on a bounded queue ([`Feed::durable`]). When the
//! queue is full the batch is not queued and the follower is marked lagging; at the next
//! batch that finds room the shard sends a copy of its engine instead, and the follower
//! starts again from it ([`Observer::resync`]). So the follower only ever holds durable
//! state, applies it in log order, and is either exactly at a durable sequence number or
//! about to be replaced.
//!
//! Work that must see the follower's engine at a known sequence number (a new stream
//! client's snapshot) is sent to it as a [`Call`] on a second bounded queue. A call runs
//! after every batch queued before it, so it sees every decision acknowledged before it was
//! made (the shard queues a batch before it answers anyone in it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use engine::{Decision, Engine};

use crate::limits::{FOLLOWER_CALLS_MAX, FOLLOWER_QUEUE_BATCHES};

/// What runs on the follower thread after each durable batch.
pub trait Observer: Send {
    /// The batch that made the log durable up to `seq` was applied: `engine` is the state
    /// at `seq`, `decisions` what the batch decided, in order.
    fn batch(&mut self, shard: u16, seq: u64, engine: &Engine, decisions: &[Decision]);

    /// The follower missed batches and restarted from a copy of the shard's engine at
    /// `seq`: whatever the observer derived from earlier batches may be stale.
    fn resync(&mut self, shard: u16, seq: u64, engine: &Engine);
}

/// Work run on the follower thread with its sequence number and engine.
pub type Call = Box<dyn FnOnce(u64, &Engine) + Send>;

enum Message {
    /// The records of one durable batch; the log is durable up to `seq` after it.
    Batch { seq: u64, records: Vec<Vec<u8>> },
    /// A copy of the shard's engine at `seq`, after the follower fell behind.
    Resync { seq: u64, engine: Box<Engine> },
}

/// The shard's end of the follower: hands batches over without ever blocking.
pub struct Feed {
    tx: Sender<Message>,
    /// Set by the shard when a batch could not be queued, or by the follower when it found
    /// a gap; cleared by the shard once a fresh copy is queued.
    lagging: Arc<AtomicBool>,
    resyncs: metrics::Counter,
}

impl Feed {
    /// Marks the follower as behind: the next [`Feed::durable`] sends it a copy of the
    /// engine instead of records (cluster mode, after a snapshot replaced the state).
    pub fn mark_lagging(&self) {
        self.lagging.store(true, Ordering::Release);
    }

    /// Whether the follower is behind and waits for a copy of the engine.
    pub fn is_lagging(&self) -> bool {
        self.lagging.load(Ordering::Acquire)
    }

    /// Called by the shard after each successful fdatasync with the batch's records and
    /// its engine (which has applied them): the log is durable up to `seq`.
    pub fn durable(&mut self, seq: u64, records: &[Vec<u8>], engine: &Engine) {
        self.durable_batch(seq, records.to_vec(), Some(engine));
    }

    /// [`Feed::durable`] with the records handed over, and the engine only if it is the
    /// state at exactly `seq` (a pipelined shard has decided later batches when earlier
    /// ones become durable): a follower that fell behind waits for a batch that comes
    /// with it.
    pub fn durable_batch(&mut self, seq: u64, records: Vec<Vec<u8>>, engine: Option<&Engine>) {
        if self.lagging.load(Ordering::Acquire) {
            let Some(engine) = engine else {
                return;
            };
            // The shard is the only sender: room now is room at the send below. Copy the
            // engine only when the copy can be queued.
            if self.tx.len() >= FOLLOWER_QUEUE_BATCHES {
                return;
            }
            let message = Message::Resync {
                seq,
                engine: Box::new(engine.clone()),
            };
            if self.tx.try_send(message).is_ok() {
                self.lagging.store(false, Ordering::Release);
                self.resyncs.increment(1);
            }
            return;
        }
        match self.tx.try_send(Message::Batch { seq, records }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("the follower fell behind; it will restart from a copy");
                self.lagging.store(true, Ordering::Release);
            }
            // The follower is gone (it stops only with the shard): nothing to feed.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The handle that queues [`Call`]s to a follower.
#[derive(Clone)]
pub struct Caller {
    tx: Sender<Call>,
}

/// Why a [`Call`] was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// The queue is full.
    Full,
    /// The follower has ended (its shard stopped).
    Stopped,
}

impl Caller {
    /// Queues `call` without waiting.
    pub fn try_call(&self, call: Call) -> Result<(), CallError> {
        self.tx.try_send(call).map_err(|e| match e {
            TrySendError::Full(_) => CallError::Full,
            TrySendError::Disconnected(_) => CallError::Stopped,
        })
    }
}

/// Starts the follower of shard `shard` from `engine`, the shard's state at the durable
/// sequence number `seq`. It runs until the returned [`Feed`] is dropped.
pub fn spawn(
    shard: u16,
    engine: Engine,
    seq: u64,
    observers: Vec<Box<dyn Observer>>,
) -> std::io::Result<(Feed, Caller)> {
    let (tx, rx) = crossbeam_channel::bounded(FOLLOWER_QUEUE_BATCHES);
    let (call_tx, call_rx) = crossbeam_channel::bounded(FOLLOWER_CALLS_MAX);
    let lagging = Arc::new(AtomicBool::new(false));
    let mut follower = Follower {
        shard,
        seq,
        engine,
        observers,
        lagging: Arc::clone(&lagging),
    };
    std::thread::Builder::new()
        .name(format!("follower-{shard}"))
        .spawn(move || follower.run(&rx, &call_rx))?;
    let feed = Feed {
        tx,
        lagging,
        resyncs: metrics::counter!("boxoffice_follower_resyncs_total", "shard" => shard.to_string()),
    };
    Ok((feed, Caller { tx: call_tx }))
}

struct Follower {
    shard: u16,
    /// The log is durable up to here, and `engine` has applied exactly that much.
    seq: u64,
    engine: Engine,
    observers: Vec<Box<dyn Observer>>,
    lagging: Arc<AtomicBool>,
}

impl Follower {
    fn run(&mut self, batches: &Receiver<Message>, calls: &Receiver<Call>) {
        let mut calls = calls.clone();
        // Batches queued before a resynchronisation was asked for are skipped until it comes.
        let mut waiting_for_copy = false;
        loop {
            crossbeam_channel::select! {
                recv(batches) -> message => match message {
                    Ok(message) => self.handle(message, &mut waiting_for_copy),
                    Err(_) => return,
                },
                recv(calls) -> call => match call {
                    Ok(call) => {
                        // Batches queued before the call first: a client acknowledged before
                        // it asked sees its own decisions (read your writes).
                        while let Ok(message) = batches.try_recv() {
                            self.handle(message, &mut waiting_for_copy);
                        }
                        self.guarded(|f| call(f.seq, &f.engine));
                    }
                    Err(_) => calls = crossbeam_channel::never(),
                },
            }
        }
    }

    fn handle(&mut self, message: Message, waiting_for_copy: &mut bool) {
        match message {
            Message::Resync { seq, engine } => {
                *waiting_for_copy = false;
                self.seq = seq;
                self.engine = *engine;
                let shard = self.shard;
                self.guarded(|f| {
                    for observer in &mut f.observers {
                        observer.resync(shard, f.seq, &f.engine);
                    }
                });
            }
            Message::Batch { .. } if *waiting_for_copy => {}
            Message::Batch { seq, records } => {
                let first = seq + 1 - records.len() as u64;
                let decisions: Result<Vec<Decision>, _> =
                    records.iter().map(|r| Decision::decode(r)).collect();
                match decisions {
                    Ok(decisions) if first == self.seq + 1 => {
                        for decision in &decisions {
                            self.engine.apply(decision);
                        }
                        self.seq = seq;
                        let shard = self.shard;
                        self.guarded(|f| {
                            for observer in &mut f.observers {
                                observer.batch(shard, f.seq, &f.engine, &decisions);
                            }
                        });
                    }
                    outcome => {
                        tracing::error!(
                            shard = self.shard,
                            at = self.seq,
                            first,
                            undecodable = outcome.is_err(),
                            "the follower got a batch it cannot apply; asking for a copy"
                        );
                        self.ask_for_copy(waiting_for_copy);
                    }
                }
            }
        }
    }

    /// Runs observer code; a panic in it is logged and the follower starts again from a
    /// copy, instead of stopping for good.
    fn guarded(&mut self, f: impl FnOnce(&mut Self)) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if outcome.is_err() {
            tracing::error!(shard = self.shard, "a follower observer panicked");
            let mut waiting = true;
            self.ask_for_copy(&mut waiting);
        }
    }

    fn ask_for_copy(&mut self, waiting_for_copy: &mut bool) {
        *waiting_for_copy = true;
        self.lagging.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Records what it saw: (seq, decisions or None for a resync).
    struct Probe(mpsc::Sender<(u64, Option<usize>)>);

    impl Observer for Probe {
        fn batch(&mut self, _: u16, seq: u64, _: &Engine, decisions: &[Decision]) {
            let _ = self.0.send((seq, Some(decisions.len())));
        }
        fn resync(&mut self, _: u16, seq: u64, _: &Engine) {
            let _ = self.0.send((seq, None));
        }
    }

    fn event(engine: &Engine, id: &str, now: u64) -> Decision {
        let body = serde_json::from_value(serde_json::json!({
            "name": id, "sections": [{"id": "ga", "name": "ga", "price_cents": 1, "capacity": 10}]
        }))
        .unwrap();
        let event = crate::api::convert::new_event(body, id.into(), None).unwrap();
        let command = engine::Command::CreateEvent(event);
        match engine.decide(&command, now).unwrap() {
            engine::Decided::Change(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn applies_durable_batches_in_order_and_resyncs_after_a_gap() {
        let mut shard_engine = Engine::new(0);
        let (tx, rx) = mpsc::channel();
        let (mut feed, caller) =
            spawn(0, shard_engine.clone(), 0, vec![Box::new(Probe(tx))]).unwrap();
        let mut seq = 0;
        let batch = |engine: &mut Engine, ids: &[&str], feed: &mut Feed, seq: &mut u64| {
            let mut records = Vec::new();
            for id in ids {
                let d = event(engine, id, 1);
                engine.apply(&d);
                let mut buf = Vec::new();
                d.encode(&mut buf);
                records.push(buf);
            }
            *seq += records.len() as u64;
            feed.durable(*seq, &records, engine);
        };
        batch(&mut shard_engine, &["a", "b"], &mut feed, &mut seq);
        assert_eq!(rx.recv().unwrap(), (2, Some(2)));
        // A gap (a batch the follower never got) is noticed and repaired by a copy.
        let d = event(&shard_engine, "lost", 1);
        shard_engine.apply(&d);
        seq += 1;
        batch(&mut shard_engine, &["c"], &mut feed, &mut seq);
        while !feed.lagging.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        batch(&mut shard_engine, &["d"], &mut feed, &mut seq);
        assert_eq!(rx.recv().unwrap(), (5, None));
        let (reply, answer) = mpsc::channel();
        let call: Call = Box::new(move |seq, engine: &Engine| {
            let _ = reply.send((
                seq,
                engine.event("lost").is_some(),
                engine.event("d").is_some(),
            ));
        });
        assert_eq!(caller.try_call(call), Ok(()));
        assert_eq!(answer.recv().unwrap(), (5, true, true));
    }
}
