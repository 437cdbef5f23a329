//! The seat-map page and the event list: HTML, CSS and JavaScript compiled into the binary
//! (no build step, no third-party assets; it works offline). The pages talk only to this
//! server's API: the Content-Security-Policy allows no other origin, so a token given to
//! the page (pasted, or in the URL fragment, which browsers never send) goes nowhere else.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::extract::ApiPath;
use crate::api::AppState;

const INDEX_HTML: &str = include_str!("index.html");
const EVENT_HTML: &str = include_str!("event.html");
const STYLE_CSS: &str = include_str!("style.css");
const LIST_JS: &str = include_str!("list.js");
const SEATMAP_JS: &str = include_str!("seatmap.js");

/// Only this origin, for scripts, styles, images and API calls alike.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`: the events, with links to their seat maps.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /events/{event_id}`: the live seat map of one event (the script reads the id from
/// the path). An event this server knows does not exist is answered 404 with the same page
/// (which says so); when the shard cannot tell now (recovering, or led by another node of a
/// cluster) the page is served 200 and reports what the API says.
pub async fn event(State(state): State<AppState>, ApiPath(event_id): ApiPath) -> Response {
    let mut response = asset("text/html; charset=utf-8", EVENT_HTML);
    let shard = state.shard_of_event(&event_id);
    let known = state
        .read(shard, move |engine, _| engine.event(&event_id).is_some())
        .await;
    if let Ok(false) = known {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

/// `GET /page/style.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// `GET /page/list.js`.
pub async fn list_js() -> Response {
    asset("text/javascript; charset=utf-8", LIST_JS)
}

/// `GET /page/seatmap.js`.
pub async fn seatmap_js() -> Response {
    asset("text/javascript; charset=utf-8", SEATMAP_JS)
}
