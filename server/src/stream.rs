//! Live availability: the fan-out behind `GET /v1/events/{event_id}/stream`.
//!
//! Each shard has one [`Hub`]. Its observer runs on the shard's follower thread
//! ([`crate::follower`]), which applies every batch only after the shard made it durable,
//! so nothing reaches a client before it is durable (invariant 4), and the shard thread
//! never sees a client: no socket, no per-client work, no lock a client can hold.
//!
//! For every event somebody watches the hub keeps a little state ([`Watched`]): the counts
//! last published per section, a bounded ring of the recent messages for `Last-Event-ID`
//! resumption, the current snapshot once built, and the queues of its clients. After a
//! batch that touched a watched event, the observer builds one `change` message (the
//! sections whose counts changed and the seats the batch touched, with their status now),
//! framed once as Server-Sent Events bytes and shared by every client (a reference count,
//! not a copy), and offers it to each client's bounded queue with `try_send`: a client whose
//! queue is full is disconnected, never waited for. Every message's `id:` is the shard's
//! log sequence number after its batch, so ids are strictly increasing per event and
//! survive restarts (the log's numbering is durable).
//!
//! A new client's snapshot comes from the follower's engine: built on the follower thread
//! (at a known sequence number, between two batches) the first time it is needed after a
//! change, then shared by every client that connects until the next change.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::Bytes;
use engine::decision::{
    BookingCancelled, Cascaded, HoldConfirmed, HoldExpired, HoldPlaced, HoldReleased, Purchased,
    WaitlistJoined, WaitlistLeft,
};
use engine::{Actor, Decision, Engine, HoldId, SectionView, WaitStep};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use crate::api::dto::{EventJson, SeatMapJson, SeatSectionJson};
use crate::follower::{self, Caller, Feed, Observer};
use crate::limits::{
    STREAM_CLIENTS_MAX, STREAM_CLIENTS_PER_EVENT_MAX, STREAM_CLIENT_QUEUE,
    STREAM_EVENTS_WATCHED_MAX, STREAM_HEARTBEAT, STREAM_RING_BYTES, STREAM_RING_CHANGES,
};

/// The comment line sent to idle streams.
const HEARTBEAT: &[u8] = b":\n\n";

/// Why a client could not be given a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such event.
    NotFound,
    /// A client limit or a queue is full: retry later.
    Overloaded,
    /// The shard has no follower (recovering, failed) or the server is stopping.
    Unavailable,
}

/// The client limits a hub enforces (the constants of [`crate::limits`] in the server).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Clients across all hubs.
    pub clients: usize,
    /// Clients of one event.
    pub per_event: usize,
    /// Events with stream state on this shard.
    pub watched_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            clients: STREAM_CLIENTS_MAX,
            per_event: STREAM_CLIENTS_PER_EVENT_MAX,
            watched_events: STREAM_EVENTS_WATCHED_MAX,
        }
    }
}

/// One shard's live-availability fan-out.
pub struct Hub {
    shard: u16,
    limits: Limits,
    caller: OnceLock<Caller>,
    inner: Mutex<Inner>,
    /// Clients admitted and not yet gone.
    clients: AtomicUsize,
    closed: AtomicBool,
    metrics: HubMetrics,
}

struct HubMetrics {
    clients: metrics::Gauge,
    messages: metrics::Counter,
    drops: metrics::Counter,
}

struct Inner {
    /// The follower's position: the log is durable up to here and every batch up to it
    /// has been published.
    seq: u64,
    events: HashMap<String, Watched>,
    /// Clients admitted per event.
    clients: HashMap<String, usize>,
}

/// The stream state of one watched event.
struct Watched {
    /// Every message with an id above `floor` (and up to the hub's `seq`) is in `ring`.
    floor: u64,
    ring: VecDeque<(u64, Bytes)>,
    ring_bytes: usize,
    /// The snapshot message, while no change has been published since it was built.
    snapshot: Option<Bytes>,
    /// Counts as last published, in section order.
    sections: Vec<Counts>,
    subscribers: Vec<mpsc::Sender<Bytes>>,
    /// Sequence number of the last message, for choosing which idle state to drop.
    last_message: u64,
}

/// A section's counts in a `change` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Counts {
    id: String,
    available: u32,
    held: u32,
    sold: u32,
    waiting: u32,
    set_aside: u32,
}

/// The `data:` of a `change` message.
#[derive(Serialize)]
struct ChangeJson<'a> {
    sections: Vec<&'a Counts>,
    seats: BTreeMap<&'a str, &'static str>,
}

/// The `data:` of a `snapshot` message: the event as `GET /v1/events/{id}` plus the seat
/// map's `sections` as `seats`.
#[derive(Serialize)]
struct SnapshotJson<'a> {
    #[serde(flatten)]
    event: &'a EventJson,
    seats: &'a [SeatSectionJson],
}

fn counts(section: &SectionView) -> Counts {
    Counts {
        id: section.id.clone(),
        available: section.available,
        held: section.held,
        sold: section.sold,
        waiting: section.waiting,
        set_aside: section.set_aside,
    }
}

/// What a decision touched, as far as a stream can tell.
enum Touch {
    /// No watched state can depend on it.
    Nothing,
    /// This event, and these seats of it.
    Event {
        event_id: String,
        seats: Vec<String>,
    },
    /// Unknown: every watched event gets a fresh snapshot.
    Unknown,
}

/// The one place that knows which event and seats a decision touches. Every kind of
/// decision is named: a new one does not compile until it is added here.
fn touched(engine: &Engine, decision: &Decision) -> Touch {
    let of_hold = |id: HoldId| match engine.hold(id, &Actor::Admin, engine.now_ms()) {
        Ok(hold) => Touch::Event {
            event_id: hold.event_id,
            seats: hold.seats,
        },
        Err(_) => Touch::Unknown,
    };
    let of_event = |index: u32, seats: Vec<String>| match engine.event_id_at(index) {
        Some(event_id) => Touch::Event {
            event_id: event_id.to_string(),
            seats,
        },
        None => Touch::Unknown,
    };
    match decision {
        // Nobody watches an event before it exists.
        Decision::EventCreated(_) | Decision::EventCreatedWith(_) => Touch::Nothing,
        // Only `expires_at` moves: no count, no seat. A refusal moves nothing.
        Decision::HoldExtended(_) | Decision::Refused(_) => Touch::Nothing,
        Decision::HoldPlaced(HoldPlaced { hold, .. })
        | Decision::Purchased(Purchased { hold, .. })
        | Decision::HoldConfirmed(HoldConfirmed { hold, .. })
        | Decision::HoldReleased(HoldReleased { hold, .. })
        | Decision::HoldExpired(HoldExpired { hold, .. }) => of_hold(*hold),
        Decision::BookingCancelled(BookingCancelled { booking, .. }) => {
            match engine.booking(*booking, &Actor::Admin) {
                Ok(b) => Touch::Event {
                    event_id: b.event_id,
                    seats: b.seats,
                },
                Err(_) => Touch::Unknown,
            }
        }
        // The section's `waiting` changes; no seat does.
        Decision::WaitlistJoined(WaitlistJoined { event, .. }) => of_event(*event, Vec::new()),
        Decision::WaitlistLeft(WaitlistLeft { entry, steps, .. }) => {
            let Ok(view) = engine.waitlist_entry(*entry, &Actor::Admin, engine.now_ms()) else {
                return Touch::Unknown;
            };
            let Some(index) = engine.event_index_of(&view.event_id) else {
                return Touch::Unknown;
            };
            let touch = Touch::Event {
                event_id: view.event_id,
                seats: Vec::new(),
            };
            with_steps(engine, touch, index, steps)
        }
        Decision::Cascaded(Cascaded { base, event, steps }) => {
            with_steps(engine, touched(engine, base), *event, steps)
        }
    }
}

/// `touch` plus the seats the waiting-list steps of the event at `index` changed.
fn with_steps(engine: &Engine, touch: Touch, index: u32, steps: &[WaitStep]) -> Touch {
    let Touch::Event {
        event_id,
        mut seats,
    } = touch
    else {
        return touch;
    };
    for step in steps {
        match step {
            WaitStep::SetAside {
                section,
                seats: set,
                ..
            }
            | WaitStep::BackOnSale {
                section,
                seats: set,
                ..
            } => seats.extend(engine.seat_ids_at(index, *section, set)),
            WaitStep::Offered { lines, .. } => {
                for &(section, seat) in &lines.seats {
                    seats.extend(engine.seat_ids_at(index, section, &[seat]));
                }
            }
            WaitStep::PassedOver { .. } => {}
        }
    }
    Touch::Event { event_id, seats }
}

/// Frames one Server-Sent Events message.
fn frame(seq: u64, kind: &str, data: &str) -> Bytes {
    Bytes::from(format!("id: {seq}\nevent: {kind}\ndata: {data}\n\n"))
}

/// The snapshot message of an event at `seq`, and its counts; `None` if it does not exist.
fn snapshot(engine: &Engine, event_id: &str, seq: u64) -> Option<(Bytes, Vec<Counts>)> {
    let view = engine.event(event_id)?;
    let map = engine.seat_map(event_id)?;
    let event = EventJson::from(&view);
    let seats = SeatMapJson::from(&map);
    let data = serde_json::to_string(&SnapshotJson {
        event: &event,
        seats: &seats.sections,
    })
    .expect("a snapshot serialises");
    Some((
        frame(seq, "snapshot", &data),
        view.sections.iter().map(counts).collect(),
    ))
}

impl Watched {
    fn new(seq: u64, sections: Vec<Counts>) -> Self {
        Watched {
            floor: seq,
            ring: VecDeque::new(),
            ring_bytes: 0,
            snapshot: None,
            sections,
            subscribers: Vec::new(),
            last_message: seq,
        }
    }

    /// What a client connecting now gets first: the messages after `last_id` when the ring
    /// has them all, else the snapshot if one is built; `None` if a snapshot must be built.
    fn first_messages(&self, last_id: Option<u64>, hub_seq: u64) -> Option<Vec<Bytes>> {
        if let Some(last) = last_id.filter(|&l| l >= self.floor && l <= hub_seq) {
            return Some(
                self.ring
                    .iter()
                    .filter(|(seq, _)| *seq > last)
                    .map(|(_, m)| m.clone())
                    .collect(),
            );
        }
        self.snapshot.as_ref().map(|s| vec![s.clone()])
    }

    /// A new client's queue. Queues of clients gone since the last message are pruned here
    /// too once they outnumber the `live` clients (so a quiet event's list stays bounded).
    fn subscribe(&mut self, live: usize) -> mpsc::Receiver<Bytes> {
        if self.subscribers.len() > 2 * live + 16 {
            self.subscribers.retain(|tx| !tx.is_closed());
        }
        let (tx, rx) = mpsc::channel(STREAM_CLIENT_QUEUE);
        self.subscribers.push(tx);
        rx
    }

    /// Keeps `message` for resumption and offers it to every client; a client whose queue
    /// is full is dropped.
    fn publish(&mut self, seq: u64, message: Bytes, metrics: &HubMetrics) {
        self.last_message = seq;
        self.ring_bytes += message.len();
        self.ring.push_back((seq, message.clone()));
        while self.ring.len() > STREAM_RING_CHANGES || self.ring_bytes > STREAM_RING_BYTES {
            let Some((old, m)) = self.ring.pop_front() else {
                break;
            };
            self.floor = old;
            self.ring_bytes -= m.len();
        }
        let mut sent = 0u64;
        self.subscribers
            .retain(|tx| match tx.try_send(message.clone()) {
                Ok(()) => {
                    sent += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics.drops.increment(1);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        metrics.messages.increment(sent);
    }

    /// Publishes a fresh snapshot (after a resynchronisation or a decision of unknown reach).
    fn refresh(&mut self, engine: &Engine, event_id: &str, seq: u64, metrics: &HubMetrics) {
        if let Some((message, sections)) = snapshot(engine, event_id, seq) {
            self.sections = sections;
            self.publish(seq, message.clone(), metrics);
            self.snapshot = Some(message);
        }
    }

    /// Publishes the change of a batch that touched `seats` of the event (or only its
    /// counts), if anything visible changed.
    fn change(
        &mut self,
        engine: &Engine,
        event_id: &str,
        seats: &[String],
        seq: u64,
        metrics: &HubMetrics,
    ) {
        let Some(view) = engine.event(event_id) else {
            return;
        };
        let now: Vec<Counts> = view.sections.iter().map(counts).collect();
        let changed: Vec<&Counts> = now
            .iter()
            .enumerate()
            .filter(|(i, c)| self.sections.get(*i) != Some(c))
            .map(|(_, c)| c)
            .collect();
        let seat_states: BTreeMap<&str, &'static str> = seats
            .iter()
            .filter_map(|s| Some((s.as_str(), engine.seat_status(event_id, s)?.as_str())))
            .collect();
        if changed.is_empty() && seat_states.is_empty() {
            return;
        }
        let data = serde_json::to_string(&ChangeJson {
            sections: changed,
            seats: seat_states,
        })
        .expect("a change serialises");
        self.sections = now;
        self.snapshot = None;
        self.publish(seq, frame(seq, "change", &data), metrics);
    }
}

impl Hub {
    /// The hub of shard `shard`, with the server's limits.
    pub fn new(shard: u16) -> Self {
        Self::with_limits(shard, Limits::default())
    }

    /// The hub of shard `shard` with other limits (tests).
    pub fn with_limits(shard: u16, limits: Limits) -> Self {
        Hub {
            shard,
            limits,
            caller: OnceLock::new(),
            inner: Mutex::new(Inner {
                seq: 0,
                events: HashMap::new(),
                clients: HashMap::new(),
            }),
            clients: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            metrics: HubMetrics {
                clients: metrics::gauge!("boxoffice_stream_clients"),
                messages: metrics::counter!("boxoffice_stream_messages_total"),
                drops: metrics::counter!("boxoffice_stream_drops_total"),
            },
        }
    }

    /// Clients of this hub now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Ends every stream and refuses new ones (the server is stopping).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut inner = self.inner.lock();
        for watched in inner.events.values_mut() {
            watched.subscribers.clear();
        }
    }

    /// Counts a new client of `event_id` against the limits; `all_clients` sums the
    /// clients of every hub of the server (this one's new client included).
    pub fn admit(
        self: &Arc<Self>,
        event_id: &str,
        all_clients: impl Fn() -> usize,
    ) -> Result<Ticket, Refusal> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refusal::Unavailable);
        }
        // Counted first, checked after: two clients admitted at once both see each other.
        self.clients.fetch_add(1, Ordering::AcqRel);
        let mut ticket = Ticket {
            hub: Arc::clone(self),
            event_id: None,
        };
        if all_clients() > self.limits.clients {
            return Err(Refusal::Overloaded);
        }
        let mut inner = self.inner.lock();
        let count = inner.clients.entry(event_id.to_string()).or_insert(0);
        if *count >= self.limits.per_event {
            return Err(Refusal::Overloaded);
        }
        *count += 1;
        drop(inner);
        self.metrics.clients.increment(1.0);
        ticket.event_id = Some(event_id.to_string());
        Ok(ticket)
    }

    /// Opens the stream of an admitted client: its first messages (the changes after
    /// `last_id`, or a snapshot), then every change as it is published.
    pub async fn open(
        self: &Arc<Self>,
        ticket: Ticket,
        event_id: String,
        last_id: Option<u64>,
    ) -> Result<ClientStream, Refusal> {
        {
            let mut inner = self.inner.lock();
            let hub_seq = inner.seq;
            let live = inner.clients.get(&event_id).copied().unwrap_or(0);
            if let Some(watched) = inner.events.get_mut(&event_id) {
                if let Some(first) = watched.first_messages(last_id, hub_seq) {
                    let rx = watched.subscribe(live);
                    return Ok(ClientStream::new(first, rx, ticket));
                }
            }
        }
        // A snapshot is needed: the follower builds it between two batches.
        let caller = self.caller.get().ok_or(Refusal::Unavailable)?;
        let (reply, answer) = oneshot::channel();
        let hub = Arc::clone(self);
        let call: follower::Call = Box::new(move |seq, engine: &Engine| {
            let _ = reply.send(hub.open_on_follower(seq, engine, &event_id, last_id));
        });
        caller.try_call(call).map_err(|e| match e {
            follower::CallError::Full => Refusal::Overloaded,
            follower::CallError::Stopped => Refusal::Unavailable,
        })?;
        let (first, rx) = answer.await.map_err(|_| Refusal::Unavailable)??;
        Ok(ClientStream::new(first, rx, ticket))
    }

    /// On the follower thread, at `seq`: the watched state of the event (made if needed),
    /// the client's first messages, and its queue.
    fn open_on_follower(
        &self,
        seq: u64,
        engine: &Engine,
        event_id: &str,
        last_id: Option<u64>,
    ) -> Result<(Vec<Bytes>, mpsc::Receiver<Bytes>), Refusal> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Refusal::Unavailable);
        }
        let mut inner = self.inner.lock();
        debug_assert_eq!(inner.seq, seq, "the hub publishes every batch it follows");
        if !inner.events.contains_key(event_id) {
            let view = engine.event(event_id).ok_or(Refusal::NotFound)?;
            if inner.events.len() >= self.limits.watched_events {
                inner.drop_one_unwatched().ok_or(Refusal::Overloaded)?;
            }
            let sections = view.sections.iter().map(counts).collect();
            inner
                .events
                .insert(event_id.to_string(), Watched::new(seq, sections));
        }
        let live = inner.clients.get(event_id).copied().unwrap_or(0);
        let watched = inner.events.get_mut(event_id).expect("just ensured");
        let first = match watched.first_messages(last_id, seq) {
            Some(first) => first,
            None => {
                let (message, sections) =
                    snapshot(engine, event_id, seq).ok_or(Refusal::NotFound)?;
                // The counts published so far stay the base of the next change: a client
                // holding an older snapshot gets every change after it from the ring.
                debug_assert_eq!(sections, watched.sections, "the counts follow every batch");
                watched.snapshot = Some(message.clone());
                vec![message]
            }
        };
        Ok((first, watched.subscribe(live)))
    }

    fn on_batch(&self, seq: u64, engine: &Engine, decisions: &[Decision]) {
        let mut inner = self.inner.lock();
        inner.seq = seq;
        if inner.events.is_empty() {
            return;
        }
        let mut touches: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unknown = false;
        for decision in decisions {
            match touched(engine, decision) {
                Touch::Nothing => {}
                Touch::Event { event_id, seats } => {
                    if inner.events.contains_key(&event_id) {
                        touches.entry(event_id).or_default().extend(seats);
                    }
                }
                Touch::Unknown => unknown = true,
            }
        }
        if unknown {
            for (event_id, watched) in inner.events.iter_mut() {
                watched.refresh(engine, event_id, seq, &self.metrics);
            }
            return;
        }
        for (event_id, mut seats) in touches {
            seats.sort_unstable();
            seats.dedup();
            if let Some(watched) = inner.events.get_mut(&event_id) {
                watched.change(engine, &event_id, &seats, seq, &self.metrics);
            }
        }
    }

    fn on_resync(&self, seq: u64, engine: &Engine) {
        let mut inner = self.inner.lock();
        inner.seq = seq;
        inner.events.retain(|id, _| engine.event(id).is_some());
        for (event_id, watched) in inner.events.iter_mut() {
            watched.refresh(engine, event_id, seq, &self.metrics);
        }
    }
}

impl Inner {
    /// Drops the stream state of an event without clients (the longest idle one).
    fn drop_one_unwatched(&mut self) -> Option<()> {
        let victim = self
            .events
            .iter()
            .filter(|(id, _)| !self.clients.contains_key(*id))
            .min_by_key(|(_, w)| w.last_message)
            .map(|(id, _)| id.clone())?;
        self.events.remove(&victim);
        Some(())
    }
}

/// The hub's observer on the follower thread.
struct HubObserver(Arc<Hub>);

impl Observer for HubObserver {
    fn batch(&mut self, _shard: u16, seq: u64, engine: &Engine, decisions: &[Decision]) {
        self.0.on_batch(seq, engine, decisions);
    }
    fn resync(&mut self, _shard: u16, seq: u64, engine: &Engine) {
        self.0.on_resync(seq, engine);
    }
}

/// Starts the follower of a shard that just recovered `engine` at the durable sequence
/// number `seq`, with `hub`'s observer; the shard feeds it after every fdatasync.
pub fn start_follower(
    hub: &Arc<Hub>,
    engine: &Engine,
    seq: u64,
    more: Vec<Box<dyn Observer>>,
    log: Option<std::path::PathBuf>,
) -> Option<Feed> {
    hub.inner.lock().seq = seq;
    let mut observers: Vec<Box<dyn Observer>> = vec![Box::new(HubObserver(Arc::clone(hub)))];
    observers.extend(more);
    match follower::spawn(hub.shard, engine.clone(), seq, observers, log) {
        Ok((feed, caller)) => {
            let _ = hub.caller.set(caller);
            Some(feed)
        }
        Err(error) => {
            tracing::error!(shard = hub.shard, %error, "cannot start the follower: no live stream");
            None
        }
    }
}

/// An admitted client; gives its places back when dropped.
pub struct Ticket {
    hub: Arc<Hub>,
    /// Set once counted against its event.
    event_id: Option<String>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(event_id) = self.event_id.take() {
            let mut inner = self.hub.inner.lock();
            if let Some(count) = inner.clients.get_mut(&event_id) {
                *count -= 1;
                if *count == 0 {
                    inner.clients.remove(&event_id);
                }
            }
            drop(inner);
            self.hub.metrics.clients.decrement(1.0);
        }
        self.hub.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One client's stream body: its first messages, then its queue, with heartbeats.
pub struct ClientStream {
    first: VecDeque<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    heartbeat: tokio::time::Interval,
    _ticket: Ticket,
}

impl ClientStream {
    fn new(first: Vec<Bytes>, rx: mpsc::Receiver<Bytes>, ticket: Ticket) -> Self {
        Self::with_heartbeat(first, rx, ticket, STREAM_HEARTBEAT)
    }

    fn with_heartbeat(
        first: Vec<Bytes>,
        rx: mpsc::Receiver<Bytes>,
        ticket: Ticket,
        every: std::time::Duration,
    ) -> Self {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ClientStream {
            first: first.into(),
            rx,
            heartbeat,
            _ticket: ticket,
        }
    }
}

impl futures_core::Stream for ClientStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(message) = this.first.pop_front() {
            return Poll::Ready(Some(Ok(message)));
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(message)) => return Poll::Ready(Some(Ok(message))),
            // Dropped for falling behind, or the server is stopping.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match this.heartbeat.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT)))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A connection's I/O with a bound on how long a write may make no progress: past it the
/// write fails and the connection is closed. A stream client that stops reading fills its
/// socket and then its queue (and is dropped from the fan-out); this then frees the
/// connection, which would otherwise wait on the full socket forever.
pub struct WriteStall<T> {
    inner: T,
    limit: std::time::Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteStall<T> {
    /// Wraps `inner` with the server's bound ([`crate::limits::WRITE_STALL_TIMEOUT`]).
    pub fn new(inner: T) -> Self {
        Self::with_limit(inner, crate::limits::WRITE_STALL_TIMEOUT)
    }

    /// Wraps `inner` with another bound (tests).
    pub fn with_limit(inner: T, limit: std::time::Duration) -> Self {
        WriteStall {
            inner,
            limit,
            stalled: None,
        }
    }

    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client read nothing for too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::api::dto::CreateEventBody;
    use engine::{Command, Decided};
    use futures_core::Stream;
    use tokio::io::AsyncWriteExt;

    async fn next(stream: &mut ClientStream) -> Option<String> {
        std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx))
            .await
            .map(|m| String::from_utf8(m.unwrap().to_vec()).unwrap())
    }

    fn hub(limits: Limits) -> Arc<Hub> {
        Arc::new(Hub::with_limits(0, limits))
    }

    /// The shard side of a test: an engine, its records and a feed.
    struct Shard {
        engine: Engine,
        seq: u64,
        feed: Feed,
    }

    impl Shard {
        fn start(hub: &Arc<Hub>) -> Shard {
            let engine = Engine::new(0);
            let feed = start_follower(hub, &engine, 0, Vec::new(), None).unwrap();
            let mut shard = Shard {
                engine,
                seq: 0,
                feed,
            };
            // Built from JSON, so that new optional fields of the commands need no change here.
            let event: CreateEventBody = serde_json::from_value(serde_json::json!({
                "name": "E",
                "sections": [
                    {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1000},
                    {"id": "stalls", "name": "Stalls", "price_cents": 500,
                     "seats": {"rows": [{"label": "A", "count": 10}]}}
                ]
            }))
            .unwrap();
            let event = crate::api::convert::new_event(event, "e".into(), None).unwrap();
            shard.batch(vec![Command::CreateEvent(event)]);
            shard
        }

        /// Decides, applies and "syncs" one batch; returns the seq after it.
        fn batch(&mut self, commands: Vec<Command>) -> u64 {
            let mut records = Vec::new();
            for command in commands {
                if let Ok(Decided::Change(d)) = self.engine.decide(&command, 1_000) {
                    self.engine.apply(&d);
                    let mut buf = Vec::new();
                    d.encode(&mut buf);
                    records.push(buf);
                }
            }
            self.seq += records.len() as u64;
            self.feed.durable(self.seq, &records, &self.engine);
            self.seq
        }
    }

    fn hold(seats: &[&str], qty: u32) -> Command {
        let items: Vec<serde_json::Value> = if qty > 0 {
            vec![serde_json::json!({"section_id": "ga", "qty": qty})]
        } else {
            vec![]
        };
        Command::PlaceHold(
            serde_json::from_value(serde_json::json!({
                "actor": "Admin", "event_id": "e", "user_id": "alice",
                "items": items, "seats": seats,
            }))
            .unwrap(),
        )
    }

    fn id_of(message: &str) -> u64 {
        message
            .lines()
            .find_map(|l| l.strip_prefix("id: "))
            .unwrap()
            .parse()
            .unwrap()
    }

    fn data_of(message: &str) -> serde_json::Value {
        serde_json::from_str(
            message
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap(),
        )
        .unwrap()
    }

    async fn open(hub: &Arc<Hub>, last: Option<u64>) -> Result<ClientStream, Refusal> {
        let ticket = hub.admit("e", || hub.clients())?;
        hub.open(ticket, "e".into(), last).await
    }

    #[tokio::test]
    async fn a_snapshot_then_the_changes_of_each_batch_and_a_resume_from_the_ring() {
        let hub = hub(Limits::default());
        let mut shard = Shard::start(&hub);
        let mut client = open(&hub, None).await.unwrap();
        let snapshot = next(&mut client).await.unwrap();
        assert!(
            snapshot.starts_with("id: 1\nevent: snapshot\n"),
            "{snapshot}"
        );
        let data = data_of(&snapshot);
        assert_eq!(data["id"], "e");
        assert_eq!(data["sections"][0]["available"], 1000);
        assert_eq!(data["seats"][0]["rows"][0]["seats"][0]["status"], "free");

        let seq = shard.batch(vec![hold(&["A-1", "A-2"], 0), hold(&[], 3)]);
        let change = next(&mut client).await.unwrap();
        assert_eq!(id_of(&change), seq);
        assert!(change.contains("event: change\n"), "{change}");
        let data = data_of(&change);
        assert_eq!(
            data["seats"],
            serde_json::json!({"A-1": "held", "A-2": "held"})
        );
        let sections = data["sections"].as_array().unwrap();
        assert_eq!(sections.len(), 2, "{data}");
        assert_eq!(sections[0]["available"], 997);
        assert_eq!(sections[1]["held"], 2);
        assert_eq!(sections[1]["waiting"], 0);
        assert_eq!(sections[1]["set_aside"], 0);

        let later = shard.batch(vec![hold(&[], 1)]);
        let only_ga = data_of(&next(&mut client).await.unwrap());
        assert_eq!(
            only_ga["sections"].as_array().unwrap().len(),
            1,
            "{only_ga}"
        );
        assert_eq!(only_ga["seats"], serde_json::json!({}));

        // Resuming after the first change gets exactly the second one.
        let mut again = open(&hub, Some(seq)).await.unwrap();
        let resumed = next(&mut again).await.unwrap();
        assert_eq!(id_of(&resumed), later);
        assert!(resumed.contains("event: change"), "{resumed}");
        // A point before the ring (or unknown) gets a snapshot at the current position.
        let mut old = open(&hub, Some(0)).await.unwrap();
        let fresh = next(&mut old).await.unwrap();
        assert!(fresh.contains("event: snapshot"), "{fresh}");
        assert_eq!(data_of(&fresh)["sections"][0]["available"], 996);
    }

    #[tokio::test]
    async fn a_client_whose_queue_is_full_is_dropped_and_the_others_go_on() {
        let hub = hub(Limits::default());
        let mut shard = Shard::start(&hub);
        let mut slow = open(&hub, None).await.unwrap();
        let mut quick = open(&hub, None).await.unwrap();
        next(&mut slow).await.unwrap();
        next(&mut quick).await.unwrap();
        let mut last = 0;
        for round in 0..(STREAM_CLIENT_QUEUE + 10) {
            last = shard.batch(vec![hold(&[], 1)]);
            if round % 16 == 0 || round == STREAM_CLIENT_QUEUE + 9 {
                // The follower runs on its own thread: let it catch up before reading.
                tokio::time::sleep(Duration::from_millis(5)).await;
                while let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_millis(200), next(&mut quick)).await
                {
                    if id_of(&m) >= shard.seq {
                        break;
                    }
                }
            }
        }
        assert!(last > 0);
        // The slow client gets what was queued, then its stream ends.
        let mut got = 0;
        while tokio::time::timeout(Duration::from_secs(10), next(&mut slow))
            .await
            .expect("the dropped client's stream ends")
            .is_some()
        {
            got += 1;
        }
        assert!(got <= STREAM_CLIENT_QUEUE, "{got}");
        assert_eq!(hub.inner.lock().events["e"].subscribers.len(), 1);
    }

    #[tokio::test]
    async fn client_limits_refuse_and_a_gone_client_frees_its_place() {
        let hub = hub(Limits {
            clients: 2,
            per_event: 1,
            watched_events: 1,
        });
        let _shard = Shard::start(&hub);
        let first = open(&hub, None).await.unwrap();
        assert_eq!(open(&hub, None).await.err(), Some(Refusal::Overloaded));
        let other = hub.admit("f", || hub.clients()).unwrap();
        assert_eq!(
            hub.admit("g", || hub.clients()).err(),
            Some(Refusal::Overloaded)
        );
        drop(other);
        assert_eq!(hub.clients(), 1);
        drop(first);
        assert_eq!(hub.clients(), 0);
        assert!(open(&hub, None).await.is_ok());
        let unknown = hub.admit("nope", || hub.clients()).unwrap();
        assert_eq!(
            hub.open(unknown, "nope".into(), None).await.err(),
            Some(Refusal::NotFound)
        );
    }

    #[tokio::test]
    async fn clients_that_come_and_go_on_a_quiet_event_leave_no_queues_behind() {
        let hub = hub(Limits::default());
        let _shard = Shard::start(&hub);
        let _stays = open(&hub, None).await.unwrap();
        for _ in 0..200 {
            drop(open(&hub, None).await.unwrap());
        }
        let kept = hub.inner.lock().events["e"].subscribers.len();
        // Pruned whenever they outnumber twice the live clients (1, and the one opening) + 16.
        assert!(kept <= 2 * 2 + 16 + 1, "{kept} queues kept for 1 client");
    }

    #[tokio::test]
    async fn close_ends_every_stream_and_refuses_new_ones() {
        let hub = hub(Limits::default());
        let _shard = Shard::start(&hub);
        let mut client = open(&hub, None).await.unwrap();
        next(&mut client).await.unwrap();
        hub.close();
        assert_eq!(next(&mut client).await, None);
        assert_eq!(open(&hub, None).await.err(), Some(Refusal::Unavailable));
    }

    #[tokio::test]
    async fn an_idle_stream_gets_heartbeats() {
        let hub = hub(Limits::default());
        let ticket = hub.admit("e", || 0).unwrap();
        let (_tx, rx) = mpsc::channel(1);
        let mut stream =
            ClientStream::with_heartbeat(vec![], rx, ticket, Duration::from_millis(20));
        assert_eq!(next(&mut stream).await.as_deref(), Some(":\n\n"));
        assert_eq!(next(&mut stream).await.as_deref(), Some(":\n\n"));
    }

    #[tokio::test]
    async fn a_write_that_makes_no_progress_fails_after_the_limit() {
        let (client, _server_side_unread) = tokio::io::duplex(64);
        let mut io = WriteStall::with_limit(client, Duration::from_millis(50));
        let started = std::time::Instant::now();
        let mut failed = None;
        for _ in 0..100 {
            if let Err(e) = io.write_all(&[0u8; 64]).await {
                failed = Some(e);
                break;
            }
        }
        let error = failed.expect("the writes stall and fail");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
