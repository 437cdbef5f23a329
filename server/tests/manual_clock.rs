//! In-process tests whose shards run on a manual clock ([`server::shard::ManualClock`]):
//! time moves when the test moves it, so expiry is tested without sleeping. The real
//! router, real shard threads and real logs in a temporary directory, no socket.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use server::shard::{ManualClock, Time};
use server::{Config, Running};
use tower::ServiceExt;

const ADMIN: &str = "test-admin-token";

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn hold(user: &str) -> Value {
    json!({"user_id": user, "items": [{"section_id": "ga", "qty": 1}]})
}

/// A hold of the last ticket lives exactly its TTL of shard time: a second buyer is refused
/// until the clock is moved past it; then, in the very batch of the second buyer's request,
/// the first hold expires before the request is decided (its ticket goes to the second
/// buyer), and the first hold reads `expired`. No sleep: the clock is moved by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_expires_when_the_shard_clock_is_moved_past_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        shards: Some(2),
        admin_token: Some(ADMIN.into()),
        jwt_secret: Some("test-jwt-secret".into()),
        connections_max: server::limits::CONNECTIONS_MAX,
        shard_queue: server::limits::SHARD_QUEUE_CAPACITY,
        wal_preallocate_bytes: server::limits::WAL_PREALLOCATE_BYTES,
    };
    let clock = ManualClock::at_wall_clock();
    let running = Running::start_with_time(&config, Time::Manual(clock.clone())).unwrap();
    assert!(running.wait_recovered(Duration::from_secs(10)).await);
    let app = server::api::router(running.state.clone());

    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/events",
        Some(json!({
            "id": "gig", "name": "Gig", "hold_ttl_seconds": 60,
            "sections": [{"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1}]
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, first) = call(&app, Method::POST, "/v1/events/gig/holds", Some(hold("a"))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first_id = first["id"].as_str().unwrap().to_string();

    // Just short of the TTL: still held, the ticket still taken.
    clock.advance(Duration::from_secs(59));
    let (status, body) = call(&app, Method::POST, "/v1/events/gig/holds", Some(hold("b"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = call(&app, Method::GET, &format!("/v1/holds/{first_id}"), None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("held")),
        "{body}"
    );

    // Past it: the expiry comes first in the batch, so the ticket is free for this request.
    clock.advance(Duration::from_secs(2));
    let (status, second) = call(&app, Method::POST, "/v1/events/gig/holds", Some(hold("b"))).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (status, body) = call(&app, Method::GET, &format!("/v1/holds/{first_id}"), None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("expired")),
        "{body}"
    );
    let (status, event) = call(&app, Method::GET, "/v1/events/gig", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["sections"][0]["held"], 1, "{event}");

    running.stop().await;
}
