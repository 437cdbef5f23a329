//! The ceiling: an axum server in this process that answers the same routes, parses the
//! same JSON bodies into the same shapes, and does no work: no engine, no log, no fsync.
//! What the load generator measures against it is what this machine's HTTP stack and the
//! generator itself can do, so boxoffice's figures read as a fraction of it.
//!
//! It runs on its own tokio runtime with as many worker threads as the server uses by
//! default (one per core), as boxoffice would in its own process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The request bodies of the API, with the server's field rules (unknown fields refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed, as the server does, and dropped: that is the point
struct HoldBody {
    user_id: Option<String>,
    items: Option<Vec<Item>>,
    seats: Option<Vec<String>>,
    ttl_seconds: Option<u64>,
    payment_ref: Option<String>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Item {
    section_id: String,
    qty: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConfirmBody {
    payment_ref: Option<String>,
}

#[derive(Default)]
struct Counters {
    holds: AtomicU64,
    bookings: AtomicU64,
}

type Shared = Arc<Counters>;

const TIME: &str = "2030-01-01T00:00:00Z";

fn authorized(headers: &HeaderMap) -> bool {
    headers.contains_key(axum::http::header::AUTHORIZATION)
}

fn hold_json(id: &str, event_id: &str, body: &HoldBody, status: &str) -> Value {
    json!({"id": id, "event_id": event_id, "user_id": body.user_id, "status": status,
        "items": body.items, "seats": body.seats.clone().unwrap_or_default(), "total_cents": 2500,
        "created_at": TIME, "expires_at": TIME})
}

async fn place(
    State(c): State<Shared>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<HoldBody>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = format!("h-0-{}", c.holds.fetch_add(1, Ordering::Relaxed));
    (
        StatusCode::CREATED,
        Json(hold_json(&id, &event_id, &body, "held")),
    )
        .into_response()
}

async fn purchase(
    State(c): State<Shared>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<HoldBody>,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let n = c.bookings.fetch_add(1, Ordering::Relaxed);
    let mut booking = hold_json(&format!("b-0-{n}"), &event_id, &body, "confirmed");
    booking["hold_id"] = json!(format!("h-0-{n}"));
    booking["payment_ref"] = json!(body.payment_ref);
    booking["cancelled_at"] = Value::Null;
    (StatusCode::CREATED, Json(booking)).into_response()
}

async fn confirm(
    State(c): State<Shared>,
    Path(hold_id): Path<String>,
    Json(body): Json<ConfirmBody>,
) -> Response {
    let n = c.bookings.fetch_add(1, Ordering::Relaxed);
    let booking = json!({"id": format!("b-0-{n}"), "hold_id": hold_id, "event_id": "e",
        "user_id": "u", "status": "confirmed", "items": [], "seats": [], "total_cents": 2500,
        "payment_ref": body.payment_ref, "created_at": TIME, "cancelled_at": null});
    (StatusCode::CREATED, Json(booking)).into_response()
}

fn stored_hold(hold_id: &str, status: &str) -> Json<Value> {
    Json(
        json!({"id": hold_id, "event_id": "e", "user_id": "u", "status": status,
        "items": [{"section_id": "ga", "qty": 1}], "seats": [], "total_cents": 2500,
        "created_at": TIME, "expires_at": TIME}),
    )
}

async fn create_event(Json(body): Json<Value>) -> Response {
    let mut event = body;
    event["created_at"] = json!(TIME);
    (StatusCode::CREATED, Json(event)).into_response()
}

async fn get_event(Path(event_id): Path<String>) -> Json<Value> {
    Json(
        json!({"id": event_id, "name": "ceiling", "starts_at": null, "max_per_user": null,
        "hold_ttl_seconds": 600, "created_at": TIME, "sections": [{"id": "ga", "name": "GA",
        "price_cents": 2500, "kind": "general", "capacity": 100, "available": 100, "held": 0,
        "sold": 0, "rows": []}]}),
    )
}

async fn seats(Path(event_id): Path<String>) -> Json<Value> {
    Json(json!({"event_id": event_id, "sections": []}))
}

/// The ceiling's routes.
fn router() -> Router {
    Router::new()
        .route("/v1/events", post(create_event))
        .route("/v1/events/{event_id}", get(get_event))
        .route("/v1/events/{event_id}/seats", get(seats))
        .route("/v1/events/{event_id}/holds", post(place))
        .route("/v1/events/{event_id}/bookings", post(purchase))
        .route(
            "/v1/holds/{hold_id}",
            get(|Path(id): Path<String>| async move { stored_hold(&id, "held") })
                .delete(|Path(id): Path<String>| async move { stored_hold(&id, "released") }),
        )
        .route("/v1/holds/{hold_id}/confirm", post(confirm))
        .route("/ready", get(|| async { "ready" }))
        .with_state(Shared::default())
}

/// A running ceiling server; dropping it stops it.
pub struct Ceiling {
    /// Its address on 127.0.0.1.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ceiling {
    /// Starts the ceiling on 127.0.0.1 with a port of its own.
    pub fn start() -> anyhow::Result<Ceiling> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ceiling".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("ceiling-worker")
                    .build()
                    .expect("a tokio runtime starts");
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = addr_tx.send(listener.local_addr());
                    let _ = axum::serve(listener, router())
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        let addr = addr_rx.recv()??;
        Ok(Ceiling {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Keep-alive connections may hold graceful shutdown open; the generator has closed
        // its connections by now, and the thread is detached otherwise.
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}
