//! The JSON shapes of the sale-day additions: hold extension, best available, the
//! waiting list. Times are RFC 3339 UTC strings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/holds/{hold_id}/extend`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// The new TTL from now, 1 to 86,400 seconds; it may also shorten the hold. A hold
    /// never lives past `created_at` + 2 h (else 409 `extension_limit`).
    #[schema(minimum = 1, maximum = 86400)]
    pub ttl_seconds: u64,
}

/// `best_available` in a hold or purchase body: `qty` seats picked by the engine.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BestAvailableJson {
    /// A seated section; absent: the event's seated sections one after the other.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub section_id: Option<String>,
    /// Seats wanted, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub qty: u32,
    /// Whether the seats may come from several rows when no row has them together
    /// (default false).
    pub allow_split: Option<bool>,
}

impl BestAvailableJson {
    /// The engine's request.
    pub fn into_engine(self) -> engine::BestAvailable {
        engine::BestAvailable {
            section_id: self.section_id,
            qty: self.qty,
            allow_split: self.allow_split.unwrap_or(false),
        }
    }
}

/// `POST /v1/events/{event_id}/waitlist`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// For whom: required with the admin token; with a user token, absent or your own id.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub user_id: Option<String>,
    /// The section to wait for.
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,64}$")]
    pub section_id: String,
    /// Tickets wanted, all or nothing: at least 1, at most the event's `max_per_user`.
    #[schema(minimum = 1, maximum = 1000)]
    pub qty: u32,
}

/// A waiting-list entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryJson {
    /// Entry id, e.g. `w-0-3`.
    pub id: String,
    /// Event id.
    pub event_id: String,
    /// The user.
    pub user_id: String,
    /// The section.
    pub section_id: String,
    /// Tickets wanted.
    pub qty: u32,
    /// `waiting`, `offered`, `accepted`, `expired`, `declined` or `left`.
    pub status: EntryStatus,
    /// 1-based place among the section's waiting entries; null unless waiting.
    #[schema(required = true)]
    pub position: Option<u32>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The offer's hold (confirm it with `POST /v1/holds/{hold_id}/confirm`), once offered.
    #[schema(required = true)]
    pub hold_id: Option<String>,
    /// RFC 3339: when the offer expires, once offered.
    #[schema(format = DateTime, required = true)]
    pub offer_expires_at: Option<String>,
}

/// A waiting-list entry's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// In the queue (`position` says where).
    Waiting,
    /// Holds an offer: confirm `hold_id` before `offer_expires_at`.
    Offered,
    /// Its offer was confirmed.
    Accepted,
    /// Its offer expired, or its user could not take the tickets when its turn came.
    Expired,
    /// Its offer was released.
    Declined,
    /// Its user left the list.
    Left,
}
