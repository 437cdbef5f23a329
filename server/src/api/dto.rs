//! The JSON shapes of the HTTP API (requests and answers), and their OpenAPI schemas.
//! Times are RFC 3339 UTC strings; money is integer minor units.

use engine::{BookingView, EventView, HoldView, SeatMapView, SectionKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::convert::rfc3339;

/// `POST /v1/events`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
pub struct HoldBody {
    /// For whom: required with the admin token; with a user token, absent or your own id.
    #[schema(pattern = r"^[A-Za-z0-9_.@+-]{1,128}$")]
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
    pub best_available: Option<super::dto_sale::BestAvailableJson>,
}

/// `POST /v1/events/{event_id}/bookings`: a hold body plus a payment reference.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// For whom (as for holds).
    #[schema(pattern = r"^[A-Za-z0-9_.@+-]{1,128}$")]
    pub user_id: Option<String>,
    /// General-admission quantities, at most 16 (give items, seats, or both).
    #[schema(max_items = 16)]
    pub items: Option<Vec<ItemJson>>,
    /// Seat ids, at most 100.
    #[schema(max_items = 100, inline)]
    pub seats: Option<Vec<SeatId>>,
    /// Accepted for symmetry with holds; a purchase holds nothing.
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: Option<u64>,
    /// Payment provider reference, 1 to 128 bytes.
    #[schema(min_length = 1, max_length = 128)]
    pub payment_ref: Option<String>,
    /// Seats picked by the engine (best available), with or without `items`.
    pub best_available: Option<super::dto_sale::BestAvailableJson>,
}

/// `POST /v1/holds/{hold_id}/confirm` (the body may be empty).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
    pub starts_at: Option<String>,
    /// Per-user cap.
    pub max_per_user: Option<u32>,
    /// Default hold TTL.
    pub hold_ttl_seconds: u64,
    /// TTL of waiting-list offers.
    pub offer_ttl_seconds: u64,
    /// RFC 3339 creation time.
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
    /// `general` or `seated`.
    pub kind: String,
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

/// A page of events, ordered by id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub data: Vec<EventJson>,
    /// Pass as `after` for the next page; null at the end.
    pub next_cursor: Option<String>,
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
    pub status: String,
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
    pub status: String,
    /// General-admission lines.
    pub items: Vec<ItemJson>,
    /// Seat ids.
    pub seats: Vec<String>,
    /// Sum of ticket prices in minor units.
    pub total_cents: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; a hold cannot be confirmed at or after this time.
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
    pub status: String,
    /// General-admission lines.
    pub items: Vec<ItemJson>,
    /// Seat ids.
    pub seats: Vec<String>,
    /// Sum of ticket prices in minor units.
    pub total_cents: u64,
    /// Payment reference.
    pub payment_ref: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when cancelled.
    pub cancelled_at: Option<String>,
}

/// A page of bookings, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingPage {
    /// The bookings.
    pub data: Vec<BookingJson>,
    /// Pass as `after` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthJson {
    /// `ok`.
    pub status: String,
}

/// `GET /ready`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadyJson {
    /// `ready`, `recovering` or `failed`.
    pub status: String,
    /// Each shard.
    pub shards: Vec<ShardReadyJson>,
}

/// One shard's readiness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShardReadyJson {
    /// Shard number.
    pub shard: usize,
    /// `ready`, `recovering` or `failed`.
    pub status: String,
    /// Why it cannot write, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
            starts_at: e.starts_at_ms.map(super::convert::rfc3339_signed),
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
                    kind: match s.kind {
                        SectionKind::General => "general",
                        SectionKind::Seated => "seated",
                    }
                    .to_string(),
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
                                    status: st.as_str().to_string(),
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
            status: h.status.as_str().to_string(),
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
            status: b.status.as_str().to_string(),
            items: items(&b.items),
            seats: b.seats.clone(),
            total_cents: b.total_cents,
            payment_ref: b.payment_ref.clone(),
            created_at: rfc3339(b.created_at_ms),
            cancelled_at: b.cancelled_at_ms.map(rfc3339),
        }
    }
}
