//! Every limit the engine enforces, in one place. `decide` checks each of them, so that
//! `apply` never meets a value past one: a request past a limit of its own is a
//! [`Rejection::InvalidInput`](crate::Rejection) naming the field, and a shard past one of
//! its totals (holds, bookings, events, ...) refuses with `over_capacity`
//! ([`Rejection::OverCapacity`](crate::Rejection)). Where a stored field is narrower than
//! the value it holds, a compile-time assertion below ties the limit to it.

/// Longest client-chosen id (event, section) in bytes; ids match `[A-Za-z0-9_-]{1,64}`.
pub const ID_LEN_MAX: usize = 64;
/// Longest user id, in characters (Unicode scalar values, as JSON Schema's `maxLength`
/// counts them; so up to 1,020 bytes). A user id is a token's `sub` as its issuer wrote it
/// (`alice@example.com`, `auth0|5f7c8ec7`, `https://issuer.example/users/42`): any
/// characters but control characters ([`USER_ID_RULE`]).
pub const USER_ID_LEN_MAX: usize = 255;
/// The rule for user ids, as error messages state it.
pub const USER_ID_RULE: &str = "must be 1 to 255 characters, none of them a control character";
/// Longest event or section name, in characters (Unicode scalar values, as the OpenAPI
/// `maxLength` of the API document counts them), so up to 800 bytes.
pub const NAME_LEN_MAX: usize = 200;
/// Longest row label in bytes (`[A-Za-z0-9]{1,8}`); seat ids are `<row>-<number>`.
pub const ROW_LABEL_LEN_MAX: usize = 8;
/// Longest payment reference in bytes.
pub const PAYMENT_REF_LEN_MAX: usize = 128;
/// Longest idempotency key in bytes, as remembered: the server scopes a client's key (at
/// most 128 bytes) by the event, hold or booking its route names (`<scope> <key>`).
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 256;
/// Sections per event.
pub const SECTIONS_PER_EVENT_MAX: usize = 64;
/// Rows per seated section.
pub const ROWS_PER_SECTION_MAX: usize = 2_000;
/// Seats per row (a hall may be one long row: as many as a section may hold).
pub const SEATS_PER_ROW_MAX: u32 = SEATS_PER_SECTION_MAX;
/// Seats per seated section (the contract promises at least 100,000).
pub const SEATS_PER_SECTION_MAX: u32 = 200_000;
/// Seats per event, across all its seated sections.
pub const SEATS_PER_EVENT_MAX: u32 = 1_000_000;
/// Capacity of one general-admission section (the contract promises at least 10,000,000).
pub const GA_CAPACITY_MAX: u32 = 100_000_000;
/// Price of one ticket in minor units (100 million units of currency).
pub const PRICE_CENTS_MAX: u64 = 10_000_000_000;
/// Line items (GA sections) in one hold.
pub const ITEMS_PER_HOLD_MAX: usize = 16;
/// Named seats in one hold.
pub const SEATS_PER_HOLD_MAX: usize = 100;
/// Tickets (GA quantities plus seats) in one hold.
pub const TICKETS_PER_HOLD_MAX: u32 = 1_000;
/// Shortest hold TTL.
pub const HOLD_TTL_MS_MIN: u64 = 1_000;
/// Longest hold TTL (24 h).
pub const HOLD_TTL_MS_MAX: u64 = 86_400_000;
/// Hold TTL of an event that names none (10 min).
pub const HOLD_TTL_MS_DEFAULT: u64 = 600_000;
/// Largest `max_per_user` an event may set.
pub const MAX_PER_USER_MAX: u32 = 1_000_000;
/// Events one shard holds.
pub const EVENTS_PER_SHARD_MAX: usize = 100_000;
/// Live (held, unexpired) holds one shard keeps at once; beyond it a hold is refused
/// with `over_capacity` so memory stays bounded under a flood of abandoned carts.
pub const LIVE_HOLDS_PER_SHARD_MAX: usize = 5_000_000;
/// Holds (purchases included) one shard ever makes: records store counters in 32 bits,
/// which keeps a live booking near 100 bytes. Beyond it a hold or purchase is refused
/// with `over_capacity` (at ~100 bytes each, the limit is ~400 GiB of state).
pub const HOLDS_PER_SHARD_MAX: u64 = u32::MAX as u64;
/// Bookings one shard ever makes (see [`HOLDS_PER_SHARD_MAX`]).
pub const BOOKINGS_PER_SHARD_MAX: u64 = u32::MAX as u64;
/// Bytes of payment references one shard stores (booking records point into one arena
/// with 32-bit offsets); beyond it a confirm or purchase with a reference is refused
/// with `over_capacity`.
pub const PAYMENT_REF_BYTES_PER_SHARD_MAX: u64 = u32::MAX as u64;
/// Holds expired by one expiry pass, so a burst of due holds cannot stall the shard.
pub const EXPIRE_BATCH_MAX: usize = 4_096;
/// How long an idempotency key is remembered, in engine time (24 h).
pub const IDEMPOTENCY_RETENTION_MS: u64 = 86_400_000;
/// Idempotency keys one shard remembers; the oldest is forgotten first beyond it.
pub const IDEMPOTENCY_ENTRIES_MAX: usize = 1_000_000;
/// Refusals one shard remembers with their idempotency keys (a sold-out answer, so that
/// its retry gets it again), apart from [`IDEMPOTENCY_ENTRIES_MAX`]; the oldest is
/// forgotten first beyond it.
pub const IDEMPOTENCY_REFUSALS_MAX: usize = 1_000_000;
/// Largest page of a list query.
pub const PAGE_LIMIT_MAX: usize = 1_000;
/// Page size when the client names none.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// Counter values fit in 48 bits: the top 16 bits of a hold or booking id are the shard.
pub const COUNTER_MAX: u64 = (1 << 48) - 1;
/// A hold never lives past its `created_at` plus this (2 h): a longer extension is
/// refused with `extension_limit`.
pub const HOLD_LIFETIME_MS_MAX: u64 = 7_200_000;
/// Shortest waiting-list offer TTL an event may set.
pub const OFFER_TTL_MS_MIN: u64 = 1_000;
/// Longest waiting-list offer TTL an event may set (24 h).
pub const OFFER_TTL_MS_MAX: u64 = 86_400_000;
/// Live (waiting or offered) waiting-list entries of one event.
pub const WAITLIST_LIVE_PER_EVENT_MAX: usize = 100_000;
/// Waiting-list entries one shard ever records (about 32 bytes each).
pub const WAITLIST_ENTRIES_PER_SHARD_MAX: usize = 10_000_000;
/// Seats one best-available request may ask for (the seats of one hold).
pub const BEST_AVAILABLE_QTY_MAX: u32 = SEATS_PER_HOLD_MAX as u32;

// The relations between the limits and the integers that store what they bound: a limit
// raised past its field breaks the build instead of an `expect` in `apply`.

// A hold stores its GA lines and seats counts in `u8` (state.rs, `Hold`).
const _: () = assert!(ITEMS_PER_HOLD_MAX <= u8::MAX as usize);
const _: () = assert!(SEATS_PER_HOLD_MAX <= u8::MAX as usize);
const _: () = assert!(BEST_AVAILABLE_QTY_MAX as usize <= SEATS_PER_HOLD_MAX);
// A hold stores `expires_at - created_at` in `u32` ms: its TTL, an offer's, and the
// lifetime an extension may reach.
const _: () = assert!(HOLD_TTL_MS_MAX <= u32::MAX as u64);
const _: () = assert!(OFFER_TTL_MS_MAX <= u32::MAX as u64);
const _: () = assert!(HOLD_LIFETIME_MS_MAX <= u32::MAX as u64);
// A booking stores its payment reference's length in `u8` and its offset in the shard's
// arena in `u32`.
const _: () = assert!(PAYMENT_REF_LEN_MAX <= u8::MAX as usize);
const _: () = assert!(PAYMENT_REF_BYTES_PER_SHARD_MAX <= u32::MAX as u64);
// Hold, booking and entry counters are stored in `u32` and live in ids' 48 bits.
const _: () = assert!(HOLDS_PER_SHARD_MAX <= u32::MAX as u64);
const _: () = assert!(BOOKINGS_PER_SHARD_MAX <= u32::MAX as u64);
const _: () = assert!(WAITLIST_ENTRIES_PER_SHARD_MAX as u64 <= u32::MAX as u64);
const _: () = assert!(u32::MAX as u64 <= COUNTER_MAX);
// Section indexes are `u16`, event indexes `u32`.
const _: () = assert!(SECTIONS_PER_EVENT_MAX <= u16::MAX as usize + 1);
const _: () = assert!(EVENTS_PER_SHARD_MAX as u64 <= u32::MAX as u64);
// A section's seats are at most the event's (both counted in `u32`).
const _: () = assert!(SEATS_PER_SECTION_MAX <= SEATS_PER_EVENT_MAX);
