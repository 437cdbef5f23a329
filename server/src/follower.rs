//! A shard's follower: a thread with its own copy of the shard's engine, fed every batch of
//! decisions once the shard has made it durable, that runs observers against that copy off
//! the shard thread (the live-availability stream; a snapshot writer can be another).
//!
//! The shard never waits for it. Right after a batch's fdatasync the shard publishes how far
//! the log is durable and hands over the batch's encoded records with `try_send` on a
//! bounded queue ([`Feed::durable`]). When the queue is full the batch is not queued:
//!
//! - A follower given the shard's log directory (a single node) catches up by itself. When
//!   it finds a gap (a batch that does not follow its seq, or a published durable seq past
//!   its own once its queue is empty) it reads the missing records from the log's files,
//!   which hold every record after the newest snapshot, and the newest snapshot is the
//!   follower's own. The shard does nothing for it, however far behind it falls.
//! - Otherwise (cluster mode, whose log is not a wal directory; or a catch-up that failed:
//!   the records were purged by a snapshot the shard took itself) the follower is marked
//!   lagging; at the next batch that finds room the shard sends a copy of its engine
//!   instead, and the follower starts again from it ([`Observer::resync`]).
//!
//! So the follower only ever holds durable state, applies it in log order, and is either
//! exactly at a durable sequence number or about to catch up or be replaced.
//!
//! Work that must see the follower's engine at a known sequence number (a new stream
//! client's snapshot) is sent to it as a [`Call`] on a second bounded queue. A call runs
//! after every batch queued before it, so it sees every decision acknowledged before it was
//! made (the shard queues a batch before it answers anyone in it).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use engine::{Decision, Engine};

use crate::limits::{
    FOLLOWER_CALLS_MAX, FOLLOWER_CATCH_UP_RECORDS, FOLLOWER_NICE, FOLLOWER_NICE_MAX,
    FOLLOWER_QUEUE_BATCHES,
};

/// How long an idle follower waits before it looks whether batches it was not sent (a full
/// queue) left it behind the published durable seq.
const IDLE_CHECK: Duration = Duration::from_millis(50);

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
    /// How far the shard's log is durable, published before each batch is queued.
    durable: Arc<AtomicU64>,
    /// Whether the follower reads what it missed from the log itself.
    catches_up: bool,
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
        self.durable.fetch_max(seq, Ordering::Release);
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
            // It reads this batch from the log when it gets to it.
            Err(TrySendError::Full(_)) if self.catches_up => {}
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

/// The follower threads' nice value: `BOXOFFICE_FOLLOWER_NICE` when it is a number from 0 to
/// [`FOLLOWER_NICE_MAX`], [`FOLLOWER_NICE`] otherwise.
pub fn follower_nice() -> i32 {
    std::env::var("BOXOFFICE_FOLLOWER_NICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (0..=FOLLOWER_NICE_MAX).contains(n))
        .unwrap_or(FOLLOWER_NICE)
}

/// Starts the follower of shard `shard` from `engine`, the shard's state at the durable
/// sequence number `seq`. With `log`, the directory of the shard's log, the follower reads
/// the batches it was not sent from there. It runs until the returned [`Feed`] is dropped.
pub fn spawn(
    shard: u16,
    engine: Engine,
    seq: u64,
    observers: Vec<Box<dyn Observer>>,
    log: Option<PathBuf>,
) -> std::io::Result<(Feed, Caller)> {
    let (tx, rx) = crossbeam_channel::bounded(FOLLOWER_QUEUE_BATCHES);
    let (call_tx, call_rx) = crossbeam_channel::bounded(FOLLOWER_CALLS_MAX);
    let lagging = Arc::new(AtomicBool::new(false));
    let durable = Arc::new(AtomicU64::new(seq));
    let label = shard.to_string();
    let catches_up = log.is_some();
    let mut follower = Follower {
        shard,
        seq,
        engine,
        observers,
        lagging: Arc::clone(&lagging),
        durable: Arc::clone(&durable),
        log,
        catch_ups: metrics::counter!("boxoffice_follower_catch_ups_total", "shard" => label.clone()),
        caught_up: metrics::counter!("boxoffice_follower_caught_up_records_total", "shard" => label.clone()),
    };
    let nice = follower_nice();
    std::thread::Builder::new()
        .name(format!("follower-{shard}"))
        .spawn(move || {
            if nice != 0 {
                if let Err(error) = crate::priority::set_thread_nice(nice) {
                    tracing::warn!(shard, nice, %error, "cannot set the follower's priority");
                }
            }
            follower.run(&rx, &call_rx);
        })?;
    let feed = Feed {
        tx,
        lagging,
        durable,
        catches_up,
        resyncs: metrics::counter!("boxoffice_follower_resyncs_total", "shard" => label),
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
    /// How far the shard's log is durable (the shard publishes it).
    durable: Arc<AtomicU64>,
    /// The shard's log directory, to catch up from.
    log: Option<PathBuf>,
    catch_ups: metrics::Counter,
    caught_up: metrics::Counter,
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
                        // Batches queued before the call first, and any it was not sent: a
                        // client acknowledged before it asked sees its own decisions (read
                        // your writes).
                        while let Ok(message) = batches.try_recv() {
                            self.handle(message, &mut waiting_for_copy);
                        }
                        self.catch_up_to_published(&mut waiting_for_copy);
                        self.guarded(|f| call(f.seq, &f.engine));
                    }
                    Err(_) => calls = crossbeam_channel::never(),
                },
                default(IDLE_CHECK) => self.catch_up_to_published(&mut waiting_for_copy),
            }
        }
    }

    /// Reads from the log whatever became durable that the follower was not sent (only a
    /// follower given the log: without it, the shard sends a copy instead).
    fn catch_up_to_published(&mut self, waiting_for_copy: &mut bool) {
        let durable = self.durable.load(Ordering::Acquire);
        if durable > self.seq && self.log.is_some() && !*waiting_for_copy {
            self.catch_up(durable, waiting_for_copy);
        }
    }

    /// Applies the records after its seq up to `through`, read from the log's files in one
    /// pass, handing them to the observers in batches of at most
    /// [`FOLLOWER_CATCH_UP_RECORDS`]. When they cannot all be read (no log directory, or
    /// records purged by a snapshot the follower did not take) it asks the shard for a copy.
    fn catch_up(&mut self, through: u64, waiting_for_copy: &mut bool) {
        let Some(dir) = self.log.clone() else {
            self.ask_for_copy(waiting_for_copy);
            return;
        };
        self.catch_ups.increment(1);
        let from = self.seq;
        let mut pending = Vec::new();
        let mut undecodable = None;
        let read = wal::read_durable(&dir, from, through, |seq, payload| {
            if undecodable.is_some() {
                return;
            }
            match Decision::decode(payload) {
                Ok(decision) => pending.push(decision),
                Err(_) => undecodable = Some(seq),
            }
            if pending.len() == FOLLOWER_CATCH_UP_RECORDS {
                self.apply(seq, &pending);
                pending.clear();
            }
        });
        let read_to = self.seq + pending.len() as u64;
        match read {
            Ok(last) if last == through && read_to == through && undecodable.is_none() => {
                self.apply(through, &pending);
                self.caught_up.increment(through - from);
                tracing::debug!(
                    shard = self.shard,
                    from,
                    through,
                    "the follower caught up from the log"
                );
            }
            outcome => {
                tracing::error!(
                    shard = self.shard,
                    at = self.seq,
                    through,
                    ?undecodable,
                    outcome = ?outcome.map_err(|e| e.to_string()),
                    "the follower cannot read what it missed from the log; asking for a copy"
                );
                self.ask_for_copy(waiting_for_copy);
            }
        }
    }

    /// Applies `decisions`, which take the follower's engine to `seq`, and shows them to the
    /// observers.
    fn apply(&mut self, seq: u64, decisions: &[Decision]) {
        for decision in decisions {
            self.engine.apply(decision);
        }
        self.seq = seq;
        let shard = self.shard;
        self.guarded(|f| {
            for observer in &mut f.observers {
                observer.batch(shard, f.seq, &f.engine, decisions);
            }
        });
    }

    fn handle(&mut self, message: Message, waiting_for_copy: &mut bool) {
        crate::testhooks::pause_follower();
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
            // Already read from the log while catching up.
            Message::Batch { seq, .. } if seq <= self.seq => {}
            Message::Batch { seq, records } => {
                let first = seq + 1 - records.len() as u64;
                if first > self.seq + 1 && self.log.is_some() {
                    // Batches it was not sent (a full queue) come from the log first.
                    self.catch_up(first - 1, waiting_for_copy);
                    if *waiting_for_copy {
                        return;
                    }
                }
                let decisions: Result<Vec<Decision>, _> =
                    records.iter().map(|r| Decision::decode(r)).collect();
                match decisions {
                    Ok(decisions) if first == self.seq + 1 => self.apply(seq, &decisions),
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
            spawn(0, shard_engine.clone(), 0, vec![Box::new(Probe(tx))], None).unwrap();
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

    /// Holds the follower inside its first batch until told to go on.
    struct Gate(Option<mpsc::Receiver<()>>);

    impl Observer for Gate {
        fn batch(&mut self, _: u16, _: u64, _: &Engine, _: &[Decision]) {
            if let Some(gate) = self.0.take() {
                let _ = gate.recv();
            }
        }
        fn resync(&mut self, _: u16, _: u64, _: &Engine) {}
    }

    #[test]
    fn a_follower_whose_queue_overflowed_catches_up_from_the_log_without_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = wal::Wal::open(dir.path(), wal::Options::default()).unwrap();
        let mut shard_engine = Engine::new(0);
        let (tx, rx) = mpsc::channel();
        let (open, gate) = mpsc::channel();
        let observers: Vec<Box<dyn Observer>> =
            vec![Box::new(Gate(Some(gate))), Box::new(Probe(tx))];
        let (mut feed, caller) = spawn(
            0,
            shard_engine.clone(),
            0,
            observers,
            Some(dir.path().to_path_buf()),
        )
        .unwrap();
        // The follower waits in the first batch while the shard makes more batches durable
        // than its queue holds: the last ones are not queued.
        let batches = FOLLOWER_QUEUE_BATCHES as u64 + 300;
        for n in 1..=batches {
            let d = event(&shard_engine, &format!("e{n}"), 1);
            shard_engine.apply(&d);
            let mut record = Vec::new();
            d.encode(&mut record);
            let range = wal.append(&[&record]).unwrap();
            wal.sync().unwrap();
            assert_eq!(range.end - 1, n);
            feed.durable(n, &[record], &shard_engine);
        }
        assert!(
            !feed.is_lagging(),
            "a follower that reads the log never waits for a copy"
        );
        open.send(()).unwrap();
        // It applies what was queued, then reads the rest from the log (no further batch
        // comes to show it the gap: it finds it when idle).
        let mut last = 0;
        let mut caught_up_batch = false;
        while last < batches {
            let (seq, decisions) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            let decisions = decisions.expect("no resync from a copy");
            assert!(seq > last, "batches in order");
            caught_up_batch |= decisions > 1;
            last = seq;
        }
        assert!(
            caught_up_batch,
            "the missed batches were read from the log together"
        );
        let (reply, answer) = mpsc::channel();
        let call: Call = Box::new(move |seq, engine: &Engine| {
            let _ = reply.send((seq, engine.event(&format!("e{batches}")).is_some()));
        });
        assert_eq!(caller.try_call(call), Ok(()));
        assert_eq!(answer.recv().unwrap(), (batches, true));
        // A gap the log cannot fill (records purged by a snapshot the follower did not
        // take) falls back to a copy of the shard's engine.
        drop(wal);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let d = event(&shard_engine, "after", 1);
        shard_engine.apply(&d);
        let mut record = Vec::new();
        d.encode(&mut record);
        feed.durable(batches + 2, &[record], &shard_engine);
        while !feed.is_lagging() {
            std::thread::sleep(Duration::from_millis(1));
        }
        feed.durable(batches + 2, &[], &shard_engine);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(30)).unwrap(),
            (batches + 2, None)
        );
    }
}
