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

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
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

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The list's placeholder in index.html, filled by [`index`].
const LIST_SLOT: &str = r#"<ul id="events" aria-busy="true"></ul>"#;

/// `GET /`: the events, with links to their seat maps. The first page is in the HTML
/// itself (a client without JavaScript, or a crawler, sees the links); the script adds the
/// next pages on request. When the events cannot be read now (a shard recovering, or no
/// leader in a cluster), the list is left to the script, which says why.
pub async fn index(State(state): State<AppState>) -> Response {
    let first = crate::api::events::list(
        State(state),
        axum::http::HeaderMap::new(),
        axum::extract::OriginalUri(axum::http::Uri::from_static("/v1/events?limit=100")),
        crate::api::extract::ApiQuery(crate::api::events::EventListParams {
            limit: Some(100),
            after: None,
        }),
    )
    .await;
    let Ok(axum::Json(page)) = first else {
        return asset("text/html; charset=utf-8", INDEX_HTML);
    };
    let mut list = format!(
        r#"<ul id="events" aria-busy="false" data-rendered="true" data-cursor="{}">"#,
        escape(page.next_cursor.as_deref().unwrap_or(""))
    );
    for event in &page.data {
        let (mut available, mut held, mut sold, mut capacity) = (0, 0, 0, 0);
        for s in &event.sections {
            (available, held, sold, capacity) = (
                available + u64::from(s.available),
                held + u64::from(s.held),
                sold + u64::from(s.sold),
                capacity + u64::from(s.capacity),
            );
        }
        list.push_str(&format!(
            r#"<li><a href="/events/{id}">{name}</a><span class="hint"> ({id}) · {available} of {capacity} free, {held} held, {sold} sold</span></li>"#,
            id = escape(&event.id),
            name = escape(&event.name),
        ));
    }
    list.push_str("</ul>");
    let mut html = INDEX_HTML.replacen(LIST_SLOT, &list, 1);
    if page.data.is_empty() {
        html = html.replacen(
            r#"<p id="empty" class="hint" hidden>"#,
            r#"<p id="empty" class="hint">"#,
            1,
        );
    }
    asset("text/html; charset=utf-8", html)
}

/// The page's heading in event.html, which [`event`] replaces for an unknown event.
const EVENT_HEADING: &str = r#"<h1 id="event-name">Loading the event…</h1>"#;

/// `GET /events/{event_id}`: the live seat map of one event (the script reads the id from
/// the path). An event this server knows does not exist is answered 404 with the same page,
/// whose heading says so (in a cluster, the shard's leader is asked); when the shard cannot
/// tell now (recovering, or its leader out of reach) the page is served 200 and reports
/// what the API says.
pub async fn event(State(state): State<AppState>, ApiPath(event_id): ApiPath) -> Response {
    let shard = state.shard_of_event(&event_id);
    let known = match crate::api::cluster::led_elsewhere(&state, shard) {
        // Not an event id: no event has it (and it is not put into a path below).
        _ if !crate::api::convert::is_valid_id(&event_id) => Ok(false),
        // In a cluster, the shard's leader knows: ask it for the event.
        Some(leader) => {
            let uri = format!("/v1/events/{event_id}").parse::<axum::http::Uri>();
            match uri {
                Ok(uri) => crate::api::cluster::get_from(&state, leader, Default::default(), &uri)
                    .await
                    .map(|(status, _)| status != StatusCode::NOT_FOUND),
                Err(_) => Ok(true),
            }
        }
        None => {
            let id = event_id.clone();
            state
                .read(shard, move |engine, _| engine.event(&id).is_some())
                .await
        }
    };
    if let Ok(false) = known {
        let heading = format!(
            r#"<h1 id="event-name">Event not found: {}</h1>"#,
            escape(&event_id)
        );
        let html = EVENT_HTML.replacen(EVENT_HEADING, &heading, 1);
        let mut response = asset("text/html; charset=utf-8", html);
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    asset("text/html; charset=utf-8", EVENT_HTML)
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
