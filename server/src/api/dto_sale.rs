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
