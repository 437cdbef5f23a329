//! Translating between HTTP and the engine: bodies into commands, the engine's views into
//! the API's shapes (dto.rs and dto_sale.rs hold the shapes alone), times into RFC 3339,
//! cursors, idempotency keys. Business rules stay in the engine; this only checks what
//! the engine cannot see (the shape of a time string, a header, a cursor).

use axum::http::HeaderMap;
use engine::{
    BookingId, BookingView, Command, EntryView, EventView, HoldView, Idempotency, ItemRequest,
    Layout, NewEvent, NewHold, NewRow, NewSection, Output, SeatMapView,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::dto::{
    BookingJson, BookingStatus, CreateEventBody, EventJson, HoldBody, HoldJson, HoldStatus,
    ItemJson, Page, PurchaseBody, RowJson, SeatJson, SeatMapJson, SeatRowJson, SeatSectionJson,
    SeatStatus, SectionBody, SectionJson, SectionKind,
};
use super::dto_sale::{EntryJson, EntryStatus};
use super::error::ApiError;
use crate::auth::Principal;
use crate::limits::IDEMPOTENCY_KEY_LEN_MAX;

/// RFC 3339 UTC for ms since the Unix epoch, e.g. `2026-11-23T10:00:00.250Z`.
pub fn rfc3339(ms: u64) -> String {
    rfc3339_signed(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// RFC 3339 UTC for signed ms since the Unix epoch.
pub fn rfc3339_signed(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "invalid".to_string())
}

/// Parses an RFC 3339 time into ms since the Unix epoch.
pub fn parse_rfc3339(field: &str, text: &str) -> Result<i64, ApiError> {
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        ApiError::invalid(
            field,
            format!("not an RFC 3339 time such as 2027-05-01T20:00:00Z ({e})"),
        )
    })?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::invalid(field, "time out of range"))
}

pub use engine::{is_valid_id, is_valid_user_id};

/// The `Idempotency-Key` header, if any, with the request's fingerprint: a hash of the
/// route and the canonical JSON of the body, so the same key with another request is
/// recognised as reuse. The route is formatted and the body serialized only when the
/// header is there.
///
/// A key's scope is the caller (the engine keeps each user's keys and the admin's apart)
/// and the object the route names: the event of `/v1/events/{event_id}/...`, the hold of
/// `/v1/holds/{hold_id}/...`, the booking of `/v1/bookings/{booking_id}/...` (a hold or
/// booking belongs to one event). The key is remembered as `<scope> <key>`, so the same key
/// on another event is a separate decision, whichever shards the events live on. Event
/// creation (`POST /v1/events`) is scoped to the created event by [`new_event`].
pub fn idempotency(
    headers: &HeaderMap,
    route: std::fmt::Arguments<'_>,
    body: &impl serde::Serialize,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    // Formatted only for a request that carries a key: most holds carry none.
    let route = route.to_string();
    let route = route.as_str();
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_LEN_MAX)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                format!("1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"),
            )
        })?;
    let canonical = serde_json::to_vec(body).expect("a parsed body serializes");
    let fingerprint = engine::fingerprint(&[route.as_bytes(), &canonical]);
    let key = match idempotency_scope(route) {
        Some(scope) => scoped_key(scope, key),
        None => key.to_string(),
    };
    Ok(Some(Idempotency { key, fingerprint }))
}

/// The object a route names (`/v1/events/E` of `POST /v1/events/E/holds`, `/v1/holds/H`
/// of `POST /v1/holds/H/confirm`), or `None` for a route that names none.
fn idempotency_scope(route: &str) -> Option<&str> {
    let path = route.split_once(' ').map_or(route, |(_, path)| path);
    // "/v1/<collection>/<id>": the first four '/'-separated parts.
    let end = path
        .match_indices('/')
        .nth(3)
        .map_or(path.len(), |(i, _)| i);
    let scope = &path[..end];
    (scope.matches('/').count() == 3 && !scope.ends_with('/')).then_some(scope)
}

/// The key as the engine remembers it: its scope, a space (never in a key), the key.
fn scoped_key(scope: &str, key: &str) -> String {
    format!("{scope} {key}")
}

/// The id of an event created without one: derived from the idempotency key when there
/// is one (so a retry reaches the same shard and finds its first answer), else random.
pub fn new_event_id(idempotency: Option<&Idempotency>) -> String {
    match idempotency {
        Some(idem) => format!(
            "evt_{:016x}",
            engine::fingerprint(&[b"event", idem.key.as_bytes()])
        ),
        None => format!("evt_{:016x}", rand::random::<u64>()),
    }
}

/// Turns a create-event body into the engine's command input.
pub fn new_event(
    body: CreateEventBody,
    id: String,
    idempotency: Option<Idempotency>,
) -> Result<NewEvent, ApiError> {
    let starts_at_ms = body
        .starts_at
        .as_deref()
        .map(|t| parse_rfc3339("starts_at", t))
        .transpose()?;
    let sections = body
        .sections
        .into_iter()
        .enumerate()
        .map(|(i, s)| section(i, s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewEvent {
        name: body.name,
        starts_at_ms,
        max_per_user: body.max_per_user,
        hold_ttl_ms: body.hold_ttl_seconds.map(|s| s.saturating_mul(1000)),
        sections,
        // Scoped to the event created, like the keys of the routes that name an event.
        idempotency: idempotency.map(|i| Idempotency {
            key: scoped_key(&format!("/v1/events/{id}"), &i.key),
            fingerprint: i.fingerprint,
        }),
        id,
    })
}

fn section(index: usize, body: SectionBody) -> Result<NewSection, ApiError> {
    let layout = match (body.capacity, body.seats) {
        (Some(capacity), None) => Layout::General { capacity },
        (None, Some(seats)) => Layout::Seated {
            rows: seats
                .rows
                .into_iter()
                .map(|r| NewRow {
                    label: r.label,
                    count: r.count,
                })
                .collect(),
        },
        _ => {
            return Err(ApiError::invalid(
                format!("sections[{index}]"),
                "give either capacity (general admission) or seats (assigned seats)",
            ))
        }
    };
    Ok(NewSection {
        id: body.id,
        name: body.name,
        price_cents: body.price_cents,
        layout,
    })
}

/// What a hold body asks for: a hold, or a purchase (a purchase body is a hold body plus
/// `payment_ref`).
pub enum Take {
    /// `POST /v1/events/{event_id}/holds`.
    Hold,
    /// `POST /v1/events/{event_id}/bookings`: hold and confirm as one decision.
    Purchase {
        /// The purchase body's `payment_ref`.
        payment_ref: Option<String>,
    },
}

/// The one builder of a hold's and a purchase's command, from the body they share: for
/// whom ([`user_for`]), the GA lines, the named seats, `ttl_seconds` (the engine checks it
/// for both; a purchase leaves no hold, so a valid one changes nothing), best available.
pub fn take_command(
    principal: &Principal,
    event_id: String,
    body: HoldBody,
    take: Take,
    idempotency: Option<Idempotency>,
) -> Result<Command, ApiError> {
    let user_id = user_for(principal, body.user_id)?;
    let (purchase, payment_ref) = match take {
        Take::Hold => (false, None),
        Take::Purchase { payment_ref } => (true, payment_ref),
    };
    let hold = NewHold {
        actor: principal.actor(),
        event_id,
        user_id,
        items: body
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| ItemRequest {
                section_id: i.section_id,
                qty: i.qty,
            })
            .collect(),
        seats: body
            .seats
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.0)
            .collect(),
        ttl_ms: body.ttl_seconds.map(|s| s.saturating_mul(1000)),
        payment_ref,
        idempotency,
    };
    let best = body.best_available.map(|b| Box::new(b.into_engine()));
    Ok(match (purchase, best) {
        (false, None) => Command::PlaceHold(hold),
        (false, Some(best)) => Command::PlaceHoldBest(hold, best),
        (true, None) => Command::Purchase(hold),
        (true, Some(best)) => Command::PurchaseBest(hold, best),
    })
}

/// A purchase body as the hold body it extends, and what it adds.
pub fn purchase_take(body: PurchaseBody) -> (HoldBody, Take) {
    let hold = HoldBody {
        user_id: body.user_id,
        items: body.items,
        seats: body.seats,
        ttl_seconds: body.ttl_seconds,
        best_available: body.best_available,
    };
    let take = Take::Purchase {
        payment_ref: body.payment_ref,
    };
    (hold, take)
}

/// The paging cursor of a booking list: `<created_at_ms>.<booking_id>`.
pub fn booking_cursor(created_at_ms: u64, id: BookingId) -> String {
    format!("{created_at_ms}.{id}")
}

/// Parses a booking cursor.
pub fn parse_booking_cursor(text: &str) -> Result<(u64, BookingId), ApiError> {
    text.split_once('.')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, BookingId::parse(id)?)))
        .ok_or_else(|| ApiError::invalid("after", "not a cursor returned as next_cursor"))
}

/// One page of a list gathered from several shards: each shard's items after the cursor
/// (up to `limit + 1` of them read here, or up to `limit` from another node with `more`
/// when it had others), keyed by their place in the list; merged in key order, cut to
/// `limit`, with the cursor of its last item when there is more.
pub fn page<K: Ord, J>(
    mut all: Vec<(K, J)>,
    more: bool,
    limit: usize,
    cursor: impl Fn(&K) -> String,
) -> Page<J> {
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let more = more || all.len() > limit;
    all.truncate(limit);
    Page {
        next_cursor: all.last().filter(|_| more).map(|(k, _)| cursor(k)),
        data: all.into_iter().map(|(_, j)| j).collect(),
    }
}

/// Page size from the `limit` query parameter.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(engine::limits::PAGE_LIMIT_DEFAULT),
        Some(n) if (1..=engine::limits::PAGE_LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("from 1 to {}", engine::limits::PAGE_LIMIT_MAX),
        )),
    }
}

/// Resolves for whom a hold or purchase is: a user acts for themselves (naming another
/// user is 403); the admin must name the user.
pub fn user_for(principal: &Principal, user_id: Option<String>) -> Result<String, ApiError> {
    match (principal, user_id) {
        (Principal::User(me), None) => Ok(me.clone()),
        (Principal::User(me), Some(named)) if named == *me => Ok(named),
        (Principal::User(_), Some(_)) => Err(ApiError::forbidden("user_id names another user")),
        (Principal::Admin, Some(named)) => {
            if is_valid_user_id(&named) {
                Ok(named)
            } else {
                Err(ApiError::invalid("user_id", engine::limits::USER_ID_RULE))
            }
        }
        (Principal::Admin, None) => Err(ApiError::invalid(
            "user_id",
            "required when the admin places a hold or purchase",
        )),
    }
}

/// Converts a hold output (the engine answers a hold command with a hold).
pub fn hold_json(output: Output) -> HoldJson {
    HoldJson::from(&output.into_hold())
}

/// Converts a booking output.
pub fn booking_json(output: Output) -> BookingJson {
    BookingJson::from(&output.into_booking())
}

// The API's shapes from the engine's views (dto.rs and dto_sale.rs hold the shapes alone).

impl From<engine::HoldStatus> for HoldStatus {
    fn from(status: engine::HoldStatus) -> Self {
        match status {
            engine::HoldStatus::Held => HoldStatus::Held,
            engine::HoldStatus::Confirmed => HoldStatus::Confirmed,
            engine::HoldStatus::Released => HoldStatus::Released,
            engine::HoldStatus::Expired => HoldStatus::Expired,
        }
    }
}

impl From<engine::BookingStatus> for BookingStatus {
    fn from(status: engine::BookingStatus) -> Self {
        match status {
            engine::BookingStatus::Confirmed => BookingStatus::Confirmed,
            engine::BookingStatus::Cancelled => BookingStatus::Cancelled,
        }
    }
}

impl From<engine::SeatStatus> for SeatStatus {
    fn from(status: engine::SeatStatus) -> Self {
        match status {
            engine::SeatStatus::Free => SeatStatus::Free,
            engine::SeatStatus::Held => SeatStatus::Held,
            engine::SeatStatus::Sold => SeatStatus::Sold,
        }
    }
}

impl From<engine::SectionKind> for SectionKind {
    fn from(kind: engine::SectionKind) -> Self {
        match kind {
            engine::SectionKind::General => SectionKind::General,
            engine::SectionKind::Seated => SectionKind::Seated,
        }
    }
}

fn items(items: &[engine::ItemView]) -> Vec<ItemJson> {
    items
        .iter()
        .map(|i| ItemJson {
            section_id: i.section_id.clone(),
            qty: i.qty,
        })
        .collect()
}

impl From<&EventView> for EventJson {
    fn from(e: &EventView) -> Self {
        EventJson {
            id: e.id.clone(),
            name: e.name.clone(),
            starts_at: e.starts_at_ms.map(rfc3339_signed),
            max_per_user: e.max_per_user,
            hold_ttl_seconds: e.hold_ttl_ms / 1000,
            offer_ttl_seconds: e.offer_ttl_ms / 1000,
            created_at: rfc3339(e.created_at_ms),
            sections: e
                .sections
                .iter()
                .map(|s| SectionJson {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    price_cents: s.price_cents,
                    kind: s.kind.into(),
                    capacity: s.capacity,
                    available: s.available,
                    held: s.held,
                    sold: s.sold,
                    rows: s
                        .rows
                        .iter()
                        .map(|r| RowJson {
                            label: r.label.clone(),
                            count: r.count,
                        })
                        .collect(),
                    waiting: s.waiting,
                    set_aside: s.set_aside,
                })
                .collect(),
        }
    }
}

impl From<&SeatMapView> for SeatMapJson {
    fn from(m: &SeatMapView) -> Self {
        SeatMapJson {
            event_id: m.event_id.clone(),
            sections: m
                .sections
                .iter()
                .map(|s| SeatSectionJson {
                    section_id: s.section_id.clone(),
                    name: s.name.clone(),
                    rows: s
                        .rows
                        .iter()
                        .map(|r| SeatRowJson {
                            label: r.label.clone(),
                            seats: r
                                .seats
                                .iter()
                                .enumerate()
                                .map(|(i, st)| SeatJson {
                                    id: format!("{}-{}", r.label, i + 1),
                                    status: (*st).into(),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl From<&HoldView> for HoldJson {
    fn from(h: &HoldView) -> Self {
        HoldJson {
            id: h.id.to_string(),
            event_id: h.event_id.clone(),
            user_id: h.user_id.clone(),
            status: h.status.into(),
            items: items(&h.items),
            seats: h.seats.clone(),
            total_cents: h.total_cents,
            created_at: rfc3339(h.created_at_ms),
            expires_at: rfc3339(h.expires_at_ms),
        }
    }
}

impl From<&BookingView> for BookingJson {
    fn from(b: &BookingView) -> Self {
        BookingJson {
            id: b.id.to_string(),
            hold_id: b.hold_id.to_string(),
            event_id: b.event_id.clone(),
            user_id: b.user_id.clone(),
            status: b.status.into(),
            items: items(&b.items),
            seats: b.seats.clone(),
            total_cents: b.total_cents,
            payment_ref: b.payment_ref.clone(),
            created_at: rfc3339(b.created_at_ms),
            cancelled_at: b.cancelled_at_ms.map(rfc3339),
        }
    }
}

impl From<engine::EntryStatus> for EntryStatus {
    fn from(status: engine::EntryStatus) -> Self {
        match status {
            engine::EntryStatus::Waiting => EntryStatus::Waiting,
            engine::EntryStatus::Offered => EntryStatus::Offered,
            engine::EntryStatus::Accepted => EntryStatus::Accepted,
            engine::EntryStatus::Expired => EntryStatus::Expired,
            engine::EntryStatus::Declined => EntryStatus::Declined,
            engine::EntryStatus::Left => EntryStatus::Left,
        }
    }
}

impl From<&EntryView> for EntryJson {
    fn from(e: &EntryView) -> Self {
        EntryJson {
            id: e.id.to_string(),
            event_id: e.event_id.clone(),
            user_id: e.user_id.clone(),
            section_id: e.section_id.clone(),
            qty: e.qty,
            status: e.status.into(),
            position: e.position,
            created_at: rfc3339(e.created_at_ms),
            hold_id: e.hold_id.map(|h| h.to_string()),
            offer_expires_at: e.offer_expires_at_ms.map(rfc3339),
        }
    }
}

/// `201 Created` with a JSON body.
pub fn created<T: serde::Serialize>(body: T) -> axum::response::Response {
    use axum::response::IntoResponse;
    (axum::http::StatusCode::CREATED, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_250), "2023-11-14T22:13:20.25Z");
        assert_eq!(
            parse_rfc3339("t", "2023-11-14T22:13:20.25Z").unwrap(),
            1_700_000_000_250
        );
        assert_eq!(
            parse_rfc3339("starts_at", "tomorrow").unwrap_err().code(),
            "invalid_input"
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = BookingId::new(1, 9);
        let text = booking_cursor(42, id);
        assert_eq!(parse_booking_cursor(&text).unwrap(), (42, id));
        assert!(parse_booking_cursor("42").is_err());
        assert!(parse_booking_cursor("x.b-1-9").is_err());
    }

    #[test]
    fn keys_are_scoped_by_the_object_the_route_names() {
        assert_eq!(
            idempotency_scope("POST /v1/events/e1/holds"),
            Some("/v1/events/e1")
        );
        assert_eq!(
            idempotency_scope("POST /v1/holds/h-0-1/confirm"),
            Some("/v1/holds/h-0-1")
        );
        assert_eq!(
            idempotency_scope("DELETE /v1/holds/h-0-1"),
            Some("/v1/holds/h-0-1")
        );
        assert_eq!(
            idempotency_scope("POST /v1/bookings/b-1-2/cancel"),
            Some("/v1/bookings/b-1-2")
        );
        assert_eq!(idempotency_scope("POST /v1/events"), None);
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", "k1".parse().unwrap());
        let one = idempotency(&headers, format_args!("POST /v1/events/e1/holds"), &())
            .unwrap()
            .unwrap();
        let two = idempotency(&headers, format_args!("POST /v1/events/e2/holds"), &())
            .unwrap()
            .unwrap();
        assert_ne!(one.key, two.key);
        assert_eq!(one.key, "/v1/events/e1 k1");
    }

    #[test]
    fn user_ids_allow_email_addresses_but_no_spaces() {
        assert!(is_valid_user_id("alice@example.com"));
        // Subjects as standard issuers write them (RFC 7519: any string or URI).
        assert!(is_valid_user_id("auth0|5f7c8ec7c33c6c004bbafe82"));
        assert!(is_valid_user_id("google-oauth2|109384756"));
        assert!(is_valid_user_id("https://issuer.example/users/42"));
        assert!(is_valid_user_id("alice smith"));
        assert!(is_valid_user_id(&"é".repeat(255)));
        assert!(!is_valid_user_id(&"é".repeat(256)));
        assert!(!is_valid_user_id(&"a".repeat(256)));
        assert!(!is_valid_user_id(""));
        assert!(!is_valid_user_id("alice\nbob"));
        assert!(!is_valid_user_id("alice\u{0}"));
        assert!(!is_valid_user_id("a\u{85}b"));
    }
}
