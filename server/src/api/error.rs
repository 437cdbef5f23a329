//! `ApiError`: every error the HTTP API answers, in one shape:
//! `{"error": {"code": "...", "message": "...", "field": "..."?, "request_id": "..."}}`,
//! with a stable code. Internal details are logged, never sent. Every error answer is
//! counted in `boxoffice_rejections_total{code}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::Rejection;
use serde::Serialize;
use utoipa::ToSchema;

use crate::limits::RETRY_AFTER_SECONDS;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `sold_out`.
    pub code: String,
    /// Human-readable explanation; names the field for `invalid_input`.
    pub message: String,
    /// The offending field, for `invalid_input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id, as in the answer's `X-Request-Id` header: quote it when
    /// reporting a problem (it is in the server's access log line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    /// 400 `invalid_input` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let field = field.into();
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("{field}: {message}"),
        );
        error.field = Some(field);
        error
    }
    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        )
    }
    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body over {} bytes", crate::limits::BODY_BYTES_MAX),
        )
    }
    /// 503 `overloaded`: a shard queue is full; retry after a moment.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests queued; retry",
        )
    }
    /// 503 `unavailable`: the shard is recovering, stopped, or cannot write.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// 408 `request_timeout`: the request (its body) did not arrive in time; nothing was
    /// queued, so nothing happened.
    pub fn timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request did not arrive in time; nothing was done",
        )
    }
    /// 503 `outcome_unknown`: the command was queued to its shard, which did not answer
    /// (`why`). It may still take effect: retry with the same `Idempotency-Key`.
    pub fn outcome_unknown(why: String) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "outcome_unknown",
            format!(
                "the request was accepted but its outcome is not known ({why}); it may still \
                 take effect: retry with the same Idempotency-Key to get its answer"
            ),
        )
    }
    /// The offending field, for `invalid_input`.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let status = match &rejection {
            Rejection::InvalidInput { field, .. } => {
                return ApiError::invalid(field.clone(), rejection_message(&rejection))
            }
            Rejection::NotFound { .. } => StatusCode::NOT_FOUND,
            Rejection::HoldExpired => StatusCode::GONE,
            Rejection::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::OverCapacity(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::EventExists
            | Rejection::SoldOut { .. }
            | Rejection::SeatTaken { .. }
            | Rejection::LimitExceeded { .. }
            | Rejection::HoldNotActive { .. }
            | Rejection::BookingNotActive
            | Rejection::ExtensionLimit { .. }
            | Rejection::NoAdjacentSeats { .. }
            | Rejection::AlreadyWaiting { .. }
            | Rejection::TicketsAvailable { .. }
            | Rejection::EntryNotActive { .. } => StatusCode::CONFLICT,
        };
        ApiError::new(status, rejection.code(), rejection.to_string())
    }
}

fn rejection_message(rejection: &Rejection) -> String {
    match rejection {
        Rejection::InvalidInput { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(error: crate::auth::AuthError) -> Self {
        match error {
            crate::auth::AuthError::Unauthorized(message) => ApiError::unauthorized(message),
            crate::auth::AuthError::Forbidden(message) => ApiError::forbidden(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("boxoffice_rejections_total", "code" => self.code).increment(1);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
                request_id: super::context::current_request_id(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
