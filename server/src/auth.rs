//! Who is asking: the admin (a static bearer token) or a user (an HS256 JWT whose `sub`
//! is the user id). Routes decide what each may do; the engine checks ownership. This
//! module knows tokens only: it answers with its own [`AuthError`], which the API turns
//! into its error shape (api/error.rs), and the API's extractor calls [`Auth::verify`]
//! (api/extract.rs).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::limits::{TOKEN_IAT_SKEW_MAX, TOKEN_LEN_MAX};

/// Why a caller is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials this server accepts (401 `unauthorized`), in the caller's words.
    Unauthorized(String),
    /// Good credentials, not allowed here (403 `forbidden`): a user token on an admin
    /// route, or a user acting for another.
    Forbidden(&'static str),
}

impl AuthError {
    /// The API's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Unauthorized(_) => "unauthorized",
            AuthError::Forbidden(_) => "forbidden",
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Unauthorized(message) => f.write_str(message),
            AuthError::Forbidden(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for AuthError {}

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
    pub fn require_admin(&self) -> Result<(), AuthError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::User(_) => Err(AuthError::Forbidden("this route needs the admin token")),
        }
    }
}

/// The claims of a user token that `boxoffice token` mints. Tokens from other issuers
/// need only `sub` and `exp` (RFC 7519 makes `iat` and `nbf` optional).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not valid before, seconds since the Unix epoch (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Auth {
    /// Keys from the admin token and the JWT secret (used as HMAC key bytes as given).
    pub fn new(admin_token: &str, jwt_secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        // `nbf` is checked when present (it is not required).
        validation.validate_nbf = true;
        validation.leeway = 0;
        // The contract takes a token from any standard issuer that signs {sub, exp}; many
        // add an `aud` claim, which names no audience boxoffice is configured with.
        validation.validate_aud = false;
        Auth {
            admin_token: admin_token.to_string(),
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            validation,
        }
    }

    /// Mints a user token valid for `ttl`.
    pub fn mint(&self, user_id: &str, ttl: Duration) -> String {
        let iat = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: Some(iat),
            nbf: None,
            exp: iat + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Verifies the `Authorization: Bearer` header. Missing, malformed, wrongly signed,
    /// expired or not yet valid: 401, with a message in the caller's words.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let unauthorized = |message: &str| AuthError::Unauthorized(message.into());
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer token"))?;
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
            .ok_or_else(|| unauthorized("Authorization must be `Bearer <token>`"))?;
        if constant_time_eq(token.as_bytes(), self.admin_token.as_bytes()) {
            return Ok(Principal::Admin);
        }
        self.verify_user_token(token)
            .map(Principal::User)
            .map_err(AuthError::Unauthorized)
    }

    /// Checks a user token: its header (HS256 only), its signature, then its claims (`exp`
    /// required, `nbf` and `iat` honoured when present, `sub` a valid user id). The error
    /// is a sentence for the caller, never a parser's message.
    fn verify_user_token(&self, token: &str) -> Result<String, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the token is neither the admin token nor a JWT \
                        (three base64url parts separated by dots)"
                .into());
        };
        let header =
            decode_json_part(header).ok_or("the token's header is not base64url-encoded JSON")?;
        match header.get("alg") {
            Some(serde_json::Value::String(alg)) if alg == "HS256" => {}
            Some(serde_json::Value::String(alg)) => {
                let shown = if alg.len() <= 16 && alg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    alg.as_str()
                } else {
                    "another algorithm"
                };
                return Err(format!(
                    "the token is signed with {shown}; only HS256 is accepted"
                ));
            }
            _ => return Err("the token's header has no alg; only HS256 is accepted".into()),
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.decoding,
            &self.validation,
        )
        .map_err(|e| match e.kind() {
            // The signature is good (it is checked first): a "missing" claim may be there
            // with the wrong type, which deserves its own words.
            ErrorKind::MissingRequiredClaim(claim)
                if decode_json_part(payload).is_some_and(|c| c.contains_key(claim.as_str())) =>
            {
                match claim.as_str() {
                    "sub" => "the token's sub claim is not a string (the user id)".to_string(),
                    _ => format!("the token's {claim} claim is not a time (seconds since 1970)"),
                }
            }
            kind => token_error_words(kind),
        })?;
        let claims = data.claims;
        // RFC 7519: not accepted on or after `exp` (the library refuses only after it).
        if claims
            .get("exp")
            .and_then(serde_json::Value::as_f64)
            .is_some_and(|exp| exp <= now_secs() as f64)
        {
            return Err(token_error_words(&ErrorKind::ExpiredSignature));
        }
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_f64()
                .filter(|t| *t >= 0.0)
                .ok_or("the token's iat claim is not a time (seconds since 1970)")?;
            if iat > (now_secs() + TOKEN_IAT_SKEW_MAX.as_secs()) as f64 {
                return Err("the token's iat claim is in the future".into());
            }
        }
        let sub = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .ok_or("the token has no sub claim (the user id)")?;
        if !engine::is_valid_user_id(sub) {
            return Err("the token's sub is not a valid user id".into());
        }
        Ok(sub.to_string())
    }
}

/// A JWT part (header or claims): base64url JSON object.
fn decode_json_part(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What a token error means, in the caller's words.
fn token_error_words(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => {
            "the signature does not match (the token was signed with another secret)".into()
        }
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => {
            "the token is not valid yet (its nbf is in the future)".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "sub" => "the token has no sub claim (the user id)".into(),
            "exp" => "the token has no exp claim".into(),
            _ => "the token lacks a required claim".into(),
        },
        ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
            "exp" => "the token's exp claim is not a time (seconds since 1970)".into(),
            "nbf" => "the token's nbf claim is not a time (seconds since 1970)".into(),
            _ => "the token has a claim of the wrong type".into(),
        },
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "only HS256 tokens are accepted".into()
        }
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "the token's claims are not a JSON object".into()
        }
        _ => "the token is not a well-formed JWT".into(),
    }
}

/// Compares without an early exit, so the admin token cannot be guessed byte by byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
                iat: Some(1),
                nbf: None,
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

    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    }

    #[test]
    fn a_token_with_an_audience_is_taken_and_one_at_its_exp_second_is_not() {
        let auth = Auth::new("admintoken", "secret");
        let later = now_secs() + 600;
        for aud in [
            serde_json::json!("boxoffice"),
            serde_json::json!(["a", "b"]),
        ] {
            let token = signed(serde_json::json!({"sub": "bob", "exp": later, "aud": aud}));
            assert_eq!(
                auth.verify(&headers(&token)).unwrap(),
                Principal::User("bob".into())
            );
        }
        let now = signed(serde_json::json!({"sub": "bob", "exp": now_secs()}));
        let error = auth.verify(&headers(&now)).unwrap_err();
        assert_eq!(error.code(), "unauthorized");
    }
}
