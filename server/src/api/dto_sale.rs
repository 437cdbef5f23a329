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
