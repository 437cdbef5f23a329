//! Every limit the server enforces, in one place, each with the reason for its value.
//! The engine's own limits (ids, seats per hold, TTL bounds, ...) live in
//! [`engine::limits`]; together they are the table in README.md.

use std::time::Duration;

/// Largest request body. Above it the answer is 413 `payload_too_large`. A seated event of
/// 100,000 seats is a few kB of rows; 1 MiB leaves room without letting a client park
/// megabytes in memory per connection.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// Time a client has to send a request's headers. Slow senders (slowloris) are cut off
/// so they cannot pin connections.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time from a request's headers until its command is queued to a shard (the body
/// included): past it, with nothing queued, the answer is 408 `request_timeout` and nothing
/// was done. Once a command is queued, the outcome wait applies instead
/// ([`OUTCOME_WAIT_MAX`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once. Past it a new connection gets an immediate 503 with
/// `Retry-After` and is closed, so a crowd cannot exhaust file descriptors.
pub const CONNECTIONS_MAX: usize = 8_192;

/// Commands and reads queued per shard. A full queue is answered at once with 503 and
/// `Retry-After` (invariant 8 of docs/architecture.md): waiting longer would only grow latency and memory.
pub const SHARD_QUEUE_CAPACITY: usize = 16_384;

/// Requests one shard takes into one batch (one write, one fdatasync).
pub const SHARD_BATCH_MAX: usize = 4_096;

/// Longest a shard sleeps with nothing to do, so it notices shutdown and the clock.
pub const SHARD_IDLE_TICK: Duration = Duration::from_millis(250);

/// Decisions between two snapshots of a shard. Replay runs at millions of decisions per
/// second, so this bounds the replay part of a restart to well under a second.
pub const SNAPSHOT_EVERY_DECISIONS: u64 = 1_000_000;

/// The CPU priority (nice value, 19 the lowest) of each shard's snapshot writer thread,
/// which encodes the follower's copy of the engine and writes it: background work that
/// yields the cores to the HTTP workers and the shard threads.
pub const SNAPSHOT_THREAD_NICE: i32 = 19;

/// The snapshot writer's duty cycle on the disk: after each piece of its I/O (a piece of a
/// snapshot file written and fdatasynced, or a step of an obsolete file cut away) it rests
/// this many times as long as the piece took, so the shard's log fdatasyncs find the
/// device free most of the time. A snapshot takes (1 + this) times as long to write.
pub const SNAPSHOT_IO_REST_FACTOR: u32 = 1;

/// An obsolete log file (an old segment or snapshot) is cut from its end by this many
/// bytes at a time, each cut made durable, before it is unlinked: freeing a file's blocks
/// (and, on a file system mounted with `discard`, trimming them) in one go kept the device
/// busy for tens of milliseconds while the log's fdatasyncs waited.
pub const OBSOLETE_FILE_CUT_STEP: u64 = 4 * 1024 * 1024;

/// The CPU priority (nice value) of each shard's follower thread by default, which applies
/// every durable batch a second time for the live stream and clones its engine for each
/// snapshot. `BOXOFFICE_FOLLOWER_NICE` (0 to [`FOLLOWER_NICE_MAX`]) sets another. A
/// follower that gets too little CPU to keep up falls behind and reads what it missed from
/// the log (single node), so a low priority delays the stream, never a buyer.
pub const FOLLOWER_NICE: i32 = 0;

/// The largest `BOXOFFICE_FOLLOWER_NICE` taken (the lowest priority).
pub const FOLLOWER_NICE_MAX: i32 = 19;

/// Bytes of padding (zeros past the last record) a shard's log writes ahead of its
/// records at a time. Appends into padding leave the file's size alone, so a group
/// commit's fdatasync writes the data only, not the inode as well (measured in
/// docs/benchmarks.md); one fdatasync per this many bytes of log also writes the padding. `--wal-preallocate-kib 0` turns it off.
pub const WAL_PREALLOCATE_BYTES: u64 = 1024 * 1024;

/// Shards a data directory may be created with (the server's limit: hold, booking and
/// entry ids carry their shard in 16 bits, which the assertion below keeps it within).
pub const SHARDS_MAX: usize = 64;
const _: () = assert!(SHARDS_MAX - 1 <= u16::MAX as usize);

/// Seconds a client is told to wait (`Retry-After`) when a queue is full or a shard is
/// recovering.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Longest lifetime of a user token minted by `boxoffice token`.
pub const TOKEN_TTL_MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest `Idempotency-Key` header, in bytes. The engine remembers it with its scope
/// (`<scope> <key>`), within its own, larger limit.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;
const _: () = assert!(IDEMPOTENCY_KEY_LEN_MAX + 128 <= engine::limits::IDEMPOTENCY_KEY_LEN_MAX);

/// Longest bearer token, in bytes.
pub const TOKEN_LEN_MAX: usize = 4_096;

/// How far in the future a user token's `iat` may be (the issuer's clock may run ahead of
/// this server's); past it the token is refused as issued in the future.
pub const TOKEN_IAT_SKEW_MAX: Duration = Duration::from_secs(60);

/// Longest `X-Request-Id` accepted from a client, in bytes (visible ASCII only). A longer or
/// otherwise invalid one is replaced by a generated id, which the answer carries.
pub const REQUEST_ID_LEN_MAX: usize = 128;

/// Default longest wait for the outcome of a command once it is queued to its shard
/// (`serve --outcome-wait`). Past it the answer is 503 `outcome_unknown`: the command may
/// still take effect, and a retry with the same `Idempotency-Key` gets its answer.
pub const OUTCOME_WAIT_MAX: Duration = Duration::from_secs(10);

/// Longest wait for a read to be answered by its shard; past it the answer is 503
/// `unavailable` (a read changes nothing, so it is safe to retry).
pub const READ_WAIT_MAX: Duration = Duration::from_secs(10);

/// How long a browser may cache a CORS preflight answer (`Access-Control-Max-Age`).
pub const CORS_MAX_AGE_SECONDS: u32 = 600;

/// Longest a batch may wait for its log write and fdatasync before `/ready` reports its
/// shard `stalled` (503). A healthy disk syncs in milliseconds; seconds mean a frozen or
/// dying device, and a load balancer should stop sending buyers there.
pub const SYNC_STALL_MAX: Duration = Duration::from_secs(5);

/// How far the wall clock may be behind the log's newest decision before the shard warns
/// (once per episode). Engine time never goes back: while the wall clock is behind, it
/// advances by the monotonic clock instead.
pub const CLOCK_BEHIND_WARN: Duration = Duration::from_secs(1);

/// How often a shard whose log found no space (ENOSPC, EFBIG) checks whether there is
/// space again. Writes are refused (503, `Retry-After`) in between; reads are served.
pub const WAL_FULL_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes of zeros a shard writes and fdatasyncs after its last record to check for space
/// again after a full disk; writes resume when they fit. A few batches' worth.
pub const WAL_FULL_PROBE_BYTES: u64 = 64 * 1024;

/// Durable batches queued from a shard to its follower (the thread that keeps a copy of the
/// shard's engine for the live stream and the snapshots). A full queue never blocks the
/// shard: on a single node the follower reads the batches it was not sent from the log's
/// files; in cluster mode it is marked lagging and resynchronised from a copy of the engine
/// at the next batch.
pub const FOLLOWER_QUEUE_BATCHES: usize = 4_096;

/// Decisions a follower that fell behind applies and shows its observers as one batch while
/// it catches up from the log's files (the decisions of one such batch are in memory at
/// once).
pub const FOLLOWER_CATCH_UP_RECORDS: usize = 4_096;

/// Requests (stream subscriptions that need a snapshot) queued to a follower. Past it a new
/// stream client gets 503 `overloaded`.
pub const FOLLOWER_CALLS_MAX: usize = 1_024;

/// Live-stream clients the server serves at once. Past it a new client gets 503
/// `overloaded`. An idle client costs a connection, a small queue and its share of the
/// fan-out; the connection cap ([`CONNECTIONS_MAX`]) applies too.
pub const STREAM_CLIENTS_MAX: usize = 20_000;

/// Live-stream clients of one event at once (a sale's crowd watches one event).
pub const STREAM_CLIENTS_PER_EVENT_MAX: usize = 10_000;

/// Messages queued for one stream client. A client that falls this far behind is
/// disconnected (it reconnects with `Last-Event-ID`), never waited for.
pub const STREAM_CLIENT_QUEUE: usize = 256;

/// Recent changes kept per watched event for `Last-Event-ID` resumption; an older id gets
/// a fresh snapshot instead.
pub const STREAM_RING_CHANGES: usize = 1_024;

/// Bytes of recent changes kept per watched event (a bound besides the count, since a
/// message after a resynchronisation is a whole snapshot; one larger than this is not kept,
/// and a client resuming from before it gets a fresh snapshot).
pub const STREAM_RING_BYTES: usize = 1024 * 1024;

/// Events with live-stream state per shard. Past it the state of an event nobody watches
/// is dropped; when every one is watched, a client of a new event gets 503 `overloaded`.
pub const STREAM_EVENTS_WATCHED_MAX: usize = 1_024;

/// Interval of the comment line that keeps an idle stream's connection alive.
pub const STREAM_HEARTBEAT: Duration = Duration::from_secs(15);

/// Longest time a write to a client may make no progress before the connection is
/// closed, so a client that stops reading cannot pin a connection and its buffers.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than the outcome wait a node waits for the leader's answer to a
/// request it forwarded (cluster mode).
pub const FORWARD_WAIT_EXTRA: Duration = Duration::from_secs(2);

/// Largest answer a node reads from another when it asks for one shard's part of a list
/// (cluster mode): a page of at most `PAGE_LIMIT_MAX` events or bookings.
pub const LIST_PART_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Batches a cluster shard leader keeps in flight at once (decided, not yet committed):
/// the next batch is decided while earlier ones replicate.
pub const PIPELINE_DEPTH: usize = 4;

/// Batches a single-node shard has decided and not yet released (their log write and
/// fdatasync in flight), at most. Above 1 the shard decides the next batch while a log
/// thread makes the previous ones durable; 1 (the default) runs the log stage inline on
/// the shard thread, each batch durable before the next is decided: on the 2-core machine
/// of docs/benchmarks.md the log thread's two handoffs per batch cost more than the overlap
/// won (closed loop 0.29 × the ceiling at depth 4 against 0.42-0.56 × at depth 1).
/// `BOXOFFICE_LOG_PIPELINE_DEPTH`, read once at start, sets it. Cluster mode's
/// [`PIPELINE_DEPTH`] is its own.
pub const LOG_PIPELINE_DEPTH: usize = 1;

/// The largest depth `BOXOFFICE_LOG_PIPELINE_DEPTH` may set; a value outside 1 to this
/// is ignored (the default stands).
pub const LOG_PIPELINE_DEPTH_MAX: usize = 64;
