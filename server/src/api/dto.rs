//! The JSON shapes of the HTTP API (requests and answers), and their OpenAPI schemas.
//! Times are RFC 3339 UTC strings; money is integer minor units.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

/// `POST /v1/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "tour-berlin", "name": "Tour, Berlin",
    "starts_at": "2027-05-01T20:00:00Z", "max_per_user": 4, "hold_ttl_seconds": 600,
    "sections": [
        {"id": "ga", "name": "Standing", "price_cents": 4500, "capacity": 2000},
        {"id": "balcony", "name": "Balcony", "price_cents": 8000,
         "seats": {"rows": [{"label": "A", "count": 20}, {"label": "B", "count": 20}]}}]}))]
pub struct CreateEventBody {
    /// `[A-Za-z0-9_-]{1,64}`; generated when absent.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub id: Option<String>,
    /// Display name, 1 to 200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// RFC 3339 start time.
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// Tickets one user may hold plus own; absent means no cap.
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_per_user: Option<u32>,
    /// Default hold TTL in seconds (1 to 86,400; default 600).
    #[schema(minimum = 1, maximum = 86400)]
    pub hold_ttl_seconds: Option<u64>,
    /// TTL of waiting-list offers in seconds (1 to 86,400; default `hold_ttl_seconds`).
    #[schema(minimum = 1, maximum = 86400)]
    // Left out when absent, so the idempotency fingerprint of a body without it is the
    // same as before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_ttl_seconds: Option<u64>,
    /// 1 to 64 sections.
    #[schema(min_items = 1, max_items = 64)]
    pub sections: Vec<SectionBody>,
}

/// A section to create: `capacity` for general admission, or `seats` for assigned seats.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionBody {
    /// `[A-Za-z0-9_-]{1,64}`; `s1`, `s2`, ... when absent.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub id: Option<String>,
    /// Display name, 1 to 200 characters, not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Price of one ticket in minor units.
    #[schema(maximum = 10000000000_u64)]
    pub price_cents: u64,
    /// General admission capacity (give this or `seats`).
    #[schema(minimum = 1, maximum = 100000000)]
    pub capacity: Option<u32>,
    /// Seated layout.
    pub seats: Option<SeatsBody>,
}

/// Rows of numbered seats.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatsBody {
    /// 1 to 2,000 rows, at most 200,000 seats in all.
    #[schema(min_items = 1, max_items = 2000)]
    pub rows: Vec<RowJson>,
}

/// A row: seats `<label>-1` to `<label>-<count>`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowJson {
    /// `[A-Za-z0-9]{1,8}`, unique within the event.
    #[schema(pattern = r"^[A-Za-z0-9]{1,8}$")]
    pub label: String,
    /// Seats in the row, 1 to 200,000 (at most 200,000 in the section).
    #[schema(minimum = 1, maximum = 200000)]
    pub count: u32,
}

/// `POST /v1/events/{event_id}/holds`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"section_id": "ga", "qty": 2}], "seats": ["A-12"],
    "ttl_seconds": 300}))]
pub struct HoldBody {
    /// For whom: required with the admin token; with a user token, absent or your own id.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub user_id: Option<String>,
    /// General-admission quantities, at most 16 (give items, seats, or both).
    #[schema(max_items = 16)]
    pub items: Option<Vec<ItemJson>>,
    /// Seat ids such as `A-12`, at most 100.
    #[schema(max_items = 100, inline)]
    pub seats: Option<Vec<SeatId>>,
    /// Hold TTL (1 to 86,400); default the event's `hold_ttl_seconds`.
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: Option<u64>,
    /// Seats picked by the engine (best available), with or without `items`.
    /// (Left out of the idempotency fingerprint's JSON when absent.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_available: Option<super::dto_sale::BestAvailableJson>,
}

/// `POST /v1/events/{event_id}/bookings`: a hold body plus a payment reference.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"section_id": "ga", "qty": 2}], "payment_ref": "pay_8f2c"}))]
pub struct PurchaseBody {
    /// For whom (as for holds).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub user_id: Option<String>,
    /// General-admission quantities, at most 16 (give items, seats, or both).
    #[schema(max_items = 16)]
    pub items: Option<Vec<ItemJson>>,
    /// Seat ids, at most 100.
    #[schema(max_items = 100, inline)]
    pub seats: Option<Vec<SeatId>>,
    /// Accepted as in a hold body and checked as a hold's (1 to 86,400, else 400 naming
    /// `ttl_seconds`), with no effect: a purchase leaves no live hold to expire.
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: Option<u64>,
    /// Payment provider reference, 1 to 128 bytes.
    #[schema(min_length = 1, max_length = 128)]
    pub payment_ref: Option<String>,
    /// Seats picked by the engine (best available), with or without `items`.
    /// (Left out of the idempotency fingerprint's JSON when absent.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_available: Option<super::dto_sale::BestAvailableJson>,
}

/// `POST /v1/holds/{hold_id}/confirm` (the body may be empty).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"payment_ref": "pay_8f2c"}))]
pub struct ConfirmBody {
    /// Payment provider reference, 1 to 128 bytes.
    #[schema(min_length = 1, max_length = 128)]
    pub payment_ref: Option<String>,
}

/// A seat id: `<row label>-<seat number>`, e.g. `A-12`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = r"^[A-Za-z0-9]{1,8}-[1-9][0-9]{0,5}$")]
pub struct SeatId(pub String);

/// A quantity of a general-admission section.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemJson {
    /// The section.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub section_id: String,
    /// 1 to 1,000.
    #[schema(minimum = 1, maximum = 1000)]
    pub qty: u32,
}

/// An event with live counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventJson {
    /// Event id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// RFC 3339 start time.
    #[schema(format = DateTime, required = true)]
    pub starts_at: Option<String>,
    /// Per-user cap.
    #[schema(required = true)]
    pub max_per_user: Option<u32>,
    /// Default hold TTL.
    pub hold_ttl_seconds: u64,
    /// TTL of waiting-list offers.
    pub offer_ttl_seconds: u64,
    /// RFC 3339 creation time.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Sections in creation order.
    pub sections: Vec<SectionJson>,
}

/// A section: `available + held + sold == capacity`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SectionJson {
    /// Section id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ticket price in minor units.
    pub price_cents: u64,
    /// `general` (a capacity) or `seated` (numbered seats).
    pub kind: SectionKind,
    /// Tickets in all.
    pub capacity: u32,
    /// Free now.
    pub available: u32,
    /// In live holds.
    pub held: u32,
    /// Sold.
    pub sold: u32,
    /// Rows of a seated section (empty for general admission).
    pub rows: Vec<RowJson>,
    /// Waiting-list entries waiting.
    pub waiting: u32,
    /// Returned tickets set aside for the waiting list, not yet offered (part of `held`).
    pub set_aside: u32,
}

/// A page of a list, `{data, next_cursor}`: [`EventPage`], [`BookingPage`]. Its OpenAPI
/// schema is named and described by what it lists ([`Listed`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct Page<T> {
    /// The page's items.
    pub data: Vec<T>,
    /// Pass as `after` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A page of events, ordered by id.
pub type EventPage = Page<EventJson>;

/// A page of bookings, newest first.
pub type BookingPage = Page<BookingJson>;

/// What a [`Page`] of these is called in the OpenAPI document, and how it is described.
pub trait Listed {
    /// The page's schema name.
    const PAGE: &'static str;
    /// The page's description: what it lists, in which order.
    const PAGE_DESCRIPTION: &'static str;
    /// The description of its `data`.
    const DATA_DESCRIPTION: &'static str;
}

impl Listed for EventJson {
    const PAGE: &'static str = "EventPage";
    const PAGE_DESCRIPTION: &'static str = "A page of events, ordered by id.";
    const DATA_DESCRIPTION: &'static str = "The events.";
}

impl Listed for BookingJson {
    const PAGE: &'static str = "BookingPage";
    const PAGE_DESCRIPTION: &'static str = "A page of bookings, newest first.";
    const DATA_DESCRIPTION: &'static str = "The bookings.";
}

impl<T: Listed + ToSchema> utoipa::PartialSchema for Page<T> {
    fn schema() -> RefOr<Schema> {
        let data = ArrayBuilder::new()
            .items(RefOr::Ref(Ref::from_schema_name(T::name())))
            .description(Some(T::DATA_DESCRIPTION));
        let next_cursor = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some("Pass as `after` for the next page; null at the end."));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(T::PAGE_DESCRIPTION))
            .property("data", data)
            .required("data")
            .property("next_cursor", next_cursor)
            .required("next_cursor")
            .into()
    }
}

impl<T: Listed + ToSchema> ToSchema for Page<T> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(T::PAGE)
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

/// The seats of an event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatMapJson {
    /// Event id.
    pub event_id: String,
    /// Seated sections.
    pub sections: Vec<SeatSectionJson>,
}

/// A seated section's seats.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatSectionJson {
    /// Section id.
    pub section_id: String,
    /// Display name.
    pub name: String,
    /// Rows.
    pub rows: Vec<SeatRowJson>,
}

/// A row's seats.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatRowJson {
    /// Row label.
    pub label: String,
    /// Seats in number order.
    pub seats: Vec<SeatJson>,
}

/// One seat.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SeatJson {
    /// Seat id, e.g. `A-12`.
    pub id: String,
    /// `free`, `held` or `sold`.
    pub status: SeatStatus,
}

/// A hold.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HoldJson {
    /// Hold id, e.g. `h-0-17`.
    pub id: String,
    /// Event id.
    pub event_id: String,
    /// The user it is for.
    pub user_id: String,
    /// `held`, `confirmed`, `released` or `expired`.
    pub status: HoldStatus,
    /// General-admission lines.
    pub items: Vec<ItemJson>,
    /// Seat ids.
    pub seats: Vec<String>,
    /// Sum of ticket prices in minor units.
    pub total_cents: u64,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339; a hold cannot be confirmed at or after this time.
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A booking.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingJson {
    /// Booking id, e.g. `b-0-5`.
    pub id: String,
    /// The hold it came from.
    pub hold_id: String,
    /// Event id.
    pub event_id: String,
    /// The buyer.
    pub user_id: String,
    /// `confirmed` or `cancelled`.
    pub status: BookingStatus,
    /// General-admission lines.
    pub items: Vec<ItemJson>,
    /// Seat ids.
    pub seats: Vec<String>,
    /// Sum of ticket prices in minor units.
    pub total_cents: u64,
    /// Payment reference.
    #[schema(required = true)]
    pub payment_ref: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, when cancelled.
    #[schema(format = DateTime, required = true)]
    pub cancelled_at: Option<String>,
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthJson {
    /// Always `ok`.
    #[schema(value_type = HealthStatus)]
    pub status: String,
}

/// `GET /ready`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadyJson {
    /// `ready`, `recovering`, `unavailable`, `stalled` or `failed` (the worst of the
    /// shards'; a `full` shard makes it `failed`).
    #[schema(value_type = ReadyStatus)]
    pub status: String,
    /// Each shard.
    pub shards: Vec<ShardReadyJson>,
}

/// One shard's readiness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShardReadyJson {
    /// Shard number.
    pub shard: usize,
    /// `ready`, `recovering`, `stalled` (a batch waits too long for its fdatasync), `full`
    /// (no space; writes resume by themselves), `failed` (needs a restart) or, in cluster
    /// mode, `unavailable` (no quorum or no leader this node hears from).
    #[schema(value_type = ReadyStatus)]
    pub status: String,
    /// Why it cannot write, when stalled, full, failed or unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A hold's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Live: its tickets are reserved until `expires_at`.
    Held,
    /// Turned into a booking.
    Confirmed,
    /// Given back by its owner.
    Released,
    /// Its time ran out; its tickets went back on sale.
    Expired,
}

/// A booking's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Sold.
    Confirmed,
    /// Cancelled; its tickets went back on sale.
    Cancelled,
}

/// A seat's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    /// Can be held.
    Free,
    /// In a live hold.
    Held,
    /// In a confirmed booking.
    Sold,
}

/// A section's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    /// General admission: a capacity, no seat ids.
    General,
    /// Numbered seats in rows.
    Seated,
}

/// `GET /health`'s status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The process is alive.
    Ok,
}

/// Readiness of the server or of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// Recovered and able to write.
    Ready,
    /// Still replaying its log.
    Recovering,
    /// A batch has waited longer than the stall bound for its write and fdatasync.
    Stalled,
    /// The log found no space; writes resume by themselves once there is room.
    Full,
    /// Cannot write until a restart (see `reason`).
    Failed,
    /// Cluster mode: no leader this node hears from, or no majority of the shard's
    /// replicas that it hears from (see `reason`); writes resume once there is.
    Unavailable,
}

/// An error answer (every status of 400 and above): `{"error": {"code", "message", ...}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorJson {
    /// What went wrong.
    pub error: ErrorDetailJson,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetailJson {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation; names the field for `invalid_input`.
    pub message: String,
    /// The offending field, for `invalid_input` (e.g. `items[1].qty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (its `X-Request-Id`), to find it in the server's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every error code the server answers, each always with the same status:
/// 400 `invalid_input`; 401 `unauthorized`; 403 `forbidden`; 404 `not_found`;
/// 405 `method_not_allowed`; 408 `request_timeout`; 409 `event_exists`, `sold_out`,
/// `seat_taken`, `limit_exceeded`, `hold_not_active`, `booking_not_active`,
/// `no_adjacent_seats`, `extension_limit`, `already_waiting`, `tickets_available`,
/// `entry_not_active`; 410 `hold_expired`; 413 `payload_too_large`;
/// 422 `idempotency_key_reused`; 503 `over_capacity` (a shard limit), `overloaded` (queue
/// full), `unavailable` (recovering, stopped or unable to write), `outcome_unknown` (a
/// command was queued but its shard did not answer in time). A 503 carries `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: malformed or invalid input; `field` names it.
    InvalidInput,
    /// 401: no valid token.
    Unauthorized,
    /// 403: the token may not do this.
    Forbidden,
    /// 404: no such thing (or another user's).
    NotFound,
    /// 405: no such method on this path.
    MethodNotAllowed,
    /// 408: the request took too long.
    RequestTimeout,
    /// 409: an event with this id exists.
    EventExists,
    /// 409: a section has fewer tickets available than asked.
    SoldOut,
    /// 409: a named seat is held or sold.
    SeatTaken,
    /// 409: over the event's `max_per_user`.
    LimitExceeded,
    /// 409: the hold is confirmed or released.
    HoldNotActive,
    /// 409: the booking is already cancelled.
    BookingNotActive,
    /// 409: best available found no placement although enough seats are free.
    NoAdjacentSeats,
    /// 409: the extension would keep the hold past `created_at` + 2 h.
    ExtensionLimit,
    /// 409: the user already has a live waiting-list entry for the event.
    AlreadyWaiting,
    /// 409: the section has the tickets now: buy instead of waiting.
    TicketsAvailable,
    /// 409: the entry is already accepted, expired, declined or left.
    EntryNotActive,
    /// 410: the hold is past its `expires_at`.
    HoldExpired,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 422: the `Idempotency-Key` was used with another request.
    IdempotencyKeyReused,
    /// 503: a shard keeps as much as one of its limits allows.
    OverCapacity,
    /// 503: too many requests queued.
    Overloaded,
    /// 503: the shard is recovering, stopped or cannot write.
    Unavailable,
    /// 503: the command was queued but its shard did not answer within the outcome wait;
    /// it may still take effect (retry with the same `Idempotency-Key`).
    OutcomeUnknown,
}

impl ErrorCode {
    /// Every code, in status order.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::InvalidInput,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::EventExists,
        ErrorCode::SoldOut,
        ErrorCode::SeatTaken,
        ErrorCode::LimitExceeded,
        ErrorCode::HoldNotActive,
        ErrorCode::BookingNotActive,
        ErrorCode::NoAdjacentSeats,
        ErrorCode::ExtensionLimit,
        ErrorCode::AlreadyWaiting,
        ErrorCode::TicketsAvailable,
        ErrorCode::EntryNotActive,
        ErrorCode::HoldExpired,
        ErrorCode::PayloadTooLarge,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::OverCapacity,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::OutcomeUnknown,
    ];

    /// The HTTP status this code always comes with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::EventExists
            | ErrorCode::SoldOut
            | ErrorCode::SeatTaken
            | ErrorCode::LimitExceeded
            | ErrorCode::HoldNotActive
            | ErrorCode::BookingNotActive
            | ErrorCode::NoAdjacentSeats
            | ErrorCode::ExtensionLimit
            | ErrorCode::AlreadyWaiting
            | ErrorCode::TicketsAvailable
            | ErrorCode::EntryNotActive => 409,
            ErrorCode::HoldExpired => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::OverCapacity
            | ErrorCode::Overloaded
            | ErrorCode::Unavailable
            | ErrorCode::OutcomeUnknown => 503,
        }
    }

    /// The code as the server spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::EventExists => "event_exists",
            ErrorCode::SoldOut => "sold_out",
            ErrorCode::SeatTaken => "seat_taken",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::HoldNotActive => "hold_not_active",
            ErrorCode::BookingNotActive => "booking_not_active",
            ErrorCode::NoAdjacentSeats => "no_adjacent_seats",
            ErrorCode::ExtensionLimit => "extension_limit",
            ErrorCode::AlreadyWaiting => "already_waiting",
            ErrorCode::TicketsAvailable => "tickets_available",
            ErrorCode::EntryNotActive => "entry_not_active",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::OverCapacity => "over_capacity",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(value: T) -> serde_json::Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn typed_statuses_are_spelled_as_the_engine_spells_them() {
        use engine::HoldStatus as H;
        for status in [H::Held, H::Confirmed, H::Released, H::Expired] {
            assert_eq!(json(HoldStatus::from(status)), status.as_str());
        }
        use engine::BookingStatus as B;
        for status in [B::Confirmed, B::Cancelled] {
            assert_eq!(json(BookingStatus::from(status)), status.as_str());
        }
        use engine::SeatStatus as S;
        for status in [S::Free, S::Held, S::Sold] {
            assert_eq!(json(SeatStatus::from(status)), status.as_str());
        }
        assert_eq!(
            json(SectionKind::from(engine::SectionKind::General)),
            "general"
        );
        assert_eq!(
            json(SectionKind::from(engine::SectionKind::Seated)),
            "seated"
        );
        assert_eq!(json(HealthStatus::Ok), "ok");
        for (status, text) in [
            (ReadyStatus::Ready, "ready"),
            (ReadyStatus::Recovering, "recovering"),
            (ReadyStatus::Failed, "failed"),
            (ReadyStatus::Unavailable, "unavailable"),
        ] {
            assert_eq!(json(status), text);
        }
    }

    #[tokio::test]
    async fn the_documented_error_shape_reads_every_error_the_server_sends() {
        use axum::response::IntoResponse;
        for error in [
            super::super::error::ApiError::invalid("items[0].qty", "at least 1"),
            super::super::error::ApiError::overloaded(),
            engine::Rejection::SoldOut {
                section_id: "ga".into(),
                available: 0,
            }
            .into(),
        ] {
            let code = error.code();
            let response = error.into_response();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let parsed: ErrorJson = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed.error.code.as_str(), code);
            assert!(!parsed.error.message.is_empty());
            let reparsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), reparsed);
        }
    }
}
