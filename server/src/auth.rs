//! Who is asking: the admin (a static bearer token) or a user (an HS256 JWT whose `sub`
//! is the user id). Routes decide what each may do; the engine checks ownership.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::AppState;
use crate::limits::TOKEN_LEN_MAX;

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The admin token.
    Admin,
    /// A user token for this user id.
    User(String),
}

impl Principal {
    /// The engine's view of the caller.
    pub fn actor(&self) -> engine::Actor {
        match self {
            Principal::Admin => engine::Actor::Admin,
            Principal::User(user) => engine::Actor::User(user.clone()),
        }
    }

    /// Refuses a user token on an admin route (403).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::User(_) => Err(ApiError::forbidden("this route needs the admin token")),
        }
    }
}

/// The claims of a user token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
}

/// The keys that verify callers.
pub struct Auth {
    admin_token: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// Keys from the admin token and the JWT secret (used as HMAC key bytes as given).
    pub fn new(admin_token: &str, jwt_secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        Auth {
            admin_token: admin_token.to_string(),
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            validation,
        }
    }

    /// Mints a user token valid for `ttl`.
    pub fn mint(&self, user_id: &str, ttl: Duration) -> String {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = Claims {
            sub: user_id.to_string(),
            iat,
            exp: iat + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Verifies the `Authorization: Bearer` header. Missing, malformed, wrongly signed or
    /// expired: 401.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                // The scheme is case-insensitive (RFC 9110, section 11.1).
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= TOKEN_LEN_MAX)
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))?;
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Ok(Principal::Admin);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::unauthorized(format!("invalid token: {e}")))?;
        let sub = data.claims.sub;
        if !crate::api::convert::is_valid_user_id(&sub) {
            return Err(ApiError::unauthorized(
                "the token's sub is not a valid user id",
            ));
        }
        Ok(Principal::User(sub))
    }
}

/// Compares without an early exit, so the admin token cannot be guessed byte by byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state.auth().verify(&parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn admin_and_user_tokens_are_told_apart() {
        let auth = Auth::new("admintoken", "secret");
        assert_eq!(
            auth.verify(&headers("admintoken")).unwrap(),
            Principal::Admin
        );
        let token = auth.mint("alice", Duration::from_secs(60));
        assert_eq!(
            auth.verify(&headers(&token)).unwrap(),
            Principal::User("alice".into())
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let auth = Auth::new("admintoken", "secret");
        let other = Auth::new("x", "another-secret").mint("alice", Duration::from_secs(60));
        for h in [
            HeaderMap::new(),
            headers("garbage"),
            headers(&other),
            headers("admintoke"),
        ] {
            assert_eq!(auth.verify(&h).unwrap_err().code(), "unauthorized");
        }
        let expired = {
            let claims = Claims {
                sub: "alice".into(),
                iat: 1,
                exp: 2,
            };
            jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap()
        };
        assert_eq!(
            auth.verify(&headers(&expired)).unwrap_err().code(),
            "unauthorized"
        );
    }
}
