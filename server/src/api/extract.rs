//! Extractors that answer bad input with the API's own error shape (never a framework's
//! plain-text 400 or 422): a JSON body whose errors name the field, and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::client::AppState;
use super::error::ApiError;
use crate::auth::Principal;

/// A JSON body. An empty body reads as `{}`, so optional bodies need no special case.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::invalid("body", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the path of the first bad field (`sections[0].capacity`).
///
/// A body that parses is parsed once, without tracking the path (the common case, on every
/// hold); only a body that fails is parsed again with the path tracked, to name the field.
/// Both parses see the same bytes with the same rules, so they fail alike.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let parent = (!path.is_empty() && path != ".").then_some(path);
        let message = e.into_inner().to_string();
        // A missing field's path is the object it is missing from; `field` names the
        // field itself (`items[0].qty`), as it does for a field of the wrong type.
        let field = match (missing_field(&message), parent) {
            (Some(name), Some(parent)) => format!("{parent}.{name}"),
            (Some(name), None) => name.to_string(),
            (None, Some(parent)) => parent,
            (None, None) => "body".to_string(),
        };
        ApiError::invalid(field, message)
    })?;
    de.end().map_err(|e| ApiError::invalid("body", e))?;
    Ok(value)
}

/// The name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next().filter(|name| !name.is_empty())
}

/// One path parameter, as a string. A segment that is not UTF-8 once percent-decoded is
/// 400 `invalid_input` in the API's own error shape (axum's own answer is plain text).
#[derive(Debug)]
pub struct ApiPath(pub String);

impl<S> FromRequestParts<S> for ApiPath
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::invalid("path", e.body_text()))
    }
}

/// Query-string parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

/// Parses a query string into `T`. A parameter given with an empty value (`limit=`, or
/// `limit` alone) is absent, as the route templates write them
/// (`?event_id=&user_id=&limit=&after=`). An error names the parameter in `field` (a value
/// that does not parse, an unknown or repeated parameter), else `query`.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let given = form_urlencoded::parse(query.as_bytes()).filter(|(_, value)| !value.is_empty());
    // The pairs are re-encoded once filtered: the deserializer takes only a parser.
    let kept = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(given)
        .finish();
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(kept.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = if !path.is_empty() && path != "." {
            path
        } else {
            named_in(&message).unwrap_or("query").to_string()
        };
        let message = if message.contains(&field) {
            message
        } else {
            format!("{field}: {message}")
        };
        ApiError::invalid(field, message)
    })
}

/// The parameter an "unknown field `x`" or "duplicate field `x`" message names.
fn named_in(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    rest.split('`').next().filter(|name| !name.is_empty())
}

/// The verified caller of a route: its `Authorization` header checked by the server's
/// [`crate::auth::Auth`] (401 or 403 in the API's error shape otherwise).
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(state.auth().verify(&parts.headers)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dto::CreateEventBody;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Params {
        event_id: Option<String>,
        limit: Option<usize>,
        after: Option<String>,
    }

    #[test]
    fn an_empty_query_value_is_absent_and_a_bad_one_is_named_by_its_parameter() {
        let none = Params {
            event_id: None,
            limit: None,
            after: None,
        };
        assert_eq!(
            parse_query::<Params>("event_id=&limit=&after=").unwrap(),
            none
        );
        assert_eq!(parse_query::<Params>("limit&after").unwrap(), none);
        assert_eq!(parse_query::<Params>("").unwrap(), none);
        let some: Params = parse_query("event_id=e%201&limit=5&after=").unwrap();
        assert_eq!(
            (some.event_id.as_deref(), some.limit, some.after),
            (Some("e 1"), Some(5), None)
        );
        for (query, field) in [
            ("limit=abc", "limit"),
            ("limit=-1", "limit"),
            ("event_id=e&colour=red", "colour"),
            ("limit=1&limit=2", "limit"),
        ] {
            let error = parse_query::<Params>(query).unwrap_err();
            assert_eq!(error.field(), Some(field), "{query}");
            assert!(error.message().contains(field), "{query}: {error:?}");
        }
    }

    #[test]
    fn a_wrong_type_names_the_field_path() {
        let err = parse_json::<CreateEventBody>(
            br#"{"name":"x","sections":[{"name":"a","price_cents":1,"capacity":"ten"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.code(), "invalid_input");
        let body = format!("{err:?}");
        assert!(body.contains("sections[0].capacity"), "{body}");
    }

    #[test]
    fn a_missing_field_is_named_with_its_own_path_and_an_unknown_one_by_its_path() {
        use crate::api::dto::HoldBody;
        let missing = parse_json::<HoldBody>(br#"{"items":[{"section_id":"ga"}]}"#).unwrap_err();
        assert_eq!(missing.field(), Some("items[0].qty"));
        let top = parse_json::<CreateEventBody>(br#"{"sections":[]}"#).unwrap_err();
        assert_eq!(top.field(), Some("name"));
        let unknown =
            parse_json::<HoldBody>(br#"{"items":[{"section_id":"ga","qty":1,"colour":1}]}"#)
                .unwrap_err();
        assert!(
            unknown.field().is_some_and(|f| f.starts_with("items[0]")),
            "{unknown:?}"
        );
    }

    #[test]
    fn malformed_and_trailing_json_are_invalid_input() {
        for bad in [
            &b"{"[..],
            b"[1,2]",
            br#"{"name":"x","sections":[]} extra"#,
            b"nul",
        ] {
            assert_eq!(
                parse_json::<CreateEventBody>(bad).unwrap_err().code(),
                "invalid_input"
            );
        }
    }
}
