//! In-process tests of every route's success and error shapes: the real router, real
//! shard threads and real logs in a temporary directory, no socket.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use server::{Config, Running};
use tower::ServiceExt;

const ADMIN: &str = "test-admin-token";
const SECRET: &str = "test-jwt-secret";

struct Harness {
    app: Router,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(shards: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            shards: Some(shards),
            admin_token: Some(ADMIN.into()),
            jwt_secret: Some(SECRET.into()),
            connections_max: server::limits::CONNECTIONS_MAX,
            shard_queue: server::limits::SHARD_QUEUE_CAPACITY,
            wal_preallocate_bytes: server::limits::WAL_PREALLOCATE_BYTES,
        };
        let running = Running::start(&config).unwrap();
        assert!(running.wait_recovered(Duration::from_secs(10)).await);
        let app = server::api::router(running.state.clone());
        Harness {
            app,
            running: Some(running),
            _dir: dir,
        }
    }

    fn user(&self, user: &str) -> String {
        self.running
            .as_ref()
            .unwrap()
            .state
            .auth()
            .mint(user, Duration::from_secs(600))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.raw(
            method,
            path,
            token,
            body.map(|b| b.to_string().into_bytes()),
            &[],
        )
        .await
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .header("content-type", "application/json")
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn stop(mut self) {
        self.running.take().unwrap().stop().await;
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

fn concert() -> Value {
    json!({
        "id": "concert", "name": "Concert", "max_per_user": 6, "hold_ttl_seconds": 60,
        "starts_at": "2027-05-01T20:00:00Z",
        "sections": [
            {"id": "floor", "name": "Floor", "price_cents": 5000, "capacity": 10},
            {"id": "tier", "name": "Tier", "price_cents": 9000,
             "seats": {"rows": [{"label": "A", "count": 4}, {"label": "B", "count": 4}]}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_create_list_get_and_seat_map() {
    let h = Harness::start(2).await;
    let (status, event) = h
        .call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert_eq!(event["id"], "concert");
    assert_eq!(event["starts_at"], "2027-05-01T20:00:00Z");
    assert_eq!(event["hold_ttl_seconds"], 60);
    assert_eq!(event["sections"][0]["kind"], "general");
    assert_eq!(event["sections"][0]["available"], 10);
    assert_eq!(event["sections"][1]["kind"], "seated");
    assert_eq!(event["sections"][1]["capacity"], 8);

    let (status, again) = h
        .call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    assert_eq!(
        (status, code(&again)),
        (StatusCode::CONFLICT, "event_exists")
    );

    let (status, page) = h.call(Method::GET, "/v1/events", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], Value::Null);

    let (status, got) = h.call(Method::GET, "/v1/events/concert", None, None).await;
    assert_eq!((status, &got["name"]), (StatusCode::OK, &json!("Concert")));
    let (status, seats) = h
        .call(Method::GET, "/v1/events/concert/seats", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seats["sections"][0]["rows"][1]["seats"][3],
        json!({"id": "B-4", "status": "free"})
    );

    let (status, missing) = h.call(Method::GET, "/v1/events/nope", None, None).await;
    assert_eq!(
        (status, code(&missing)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, missing) = h
        .call(Method::GET, "/v1/events/nope/seats", None, None)
        .await;
    assert_eq!(
        (status, code(&missing)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_paging_walks_every_event_once() {
    let h = Harness::start(3).await;
    for i in 0..7 {
        let body = json!({"id": format!("e{i}"), "name": "E", "sections": [{"name": "GA", "price_cents": 1, "capacity": 1}]});
        assert_eq!(
            h.call(Method::POST, "/v1/events", Some(ADMIN), Some(body))
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let mut seen = Vec::new();
    let mut path = "/v1/events?limit=3".to_string();
    loop {
        let (status, page) = h.call(Method::GET, &path, None, None).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events?limit=3&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("e{i}")).collect::<Vec<_>>());
    let (status, bad) = h.call(Method::GET, "/v1/events?limit=0", None, None).await;
    assert_eq!(
        (status, code(&bad)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_confirm_release_cancel_and_their_errors() {
    let h = Harness::start(2).await;
    h.call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    let alice = h.user("alice");
    let bob = h.user("bob");

    let (status, hold) = h
        .call(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(json!({"items": [{"section_id": "floor", "qty": 2}], "seats": ["A-1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    assert_eq!(hold["status"], "held");
    assert_eq!(hold["user_id"], "alice");
    assert_eq!(hold["total_cents"], 2 * 5000 + 9000);
    let hold_id = hold["id"].as_str().unwrap().to_string();

    let (status, event) = h.call(Method::GET, "/v1/events/concert", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["sections"][0]["held"], 2);
    assert_eq!(event["sections"][1]["held"], 1);

    // Bob cannot see or act on Alice's hold: it does not exist for him.
    let (status, hidden) = h
        .call(
            Method::GET,
            &format!("/v1/holds/{hold_id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&hidden)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/holds/{hold_id}/confirm"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Seat taken by another buyer.
    let (status, taken) = h
        .call(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&bob),
            Some(json!({"seats": ["A-2", "A-1"]})),
        )
        .await;
    assert_eq!((status, code(&taken)), (StatusCode::CONFLICT, "seat_taken"));
    assert!(taken["error"]["message"].as_str().unwrap().contains("A-1"));

    // Sold out: Carol buys five of the eight left, Bob asks for four.
    let (status, _) = h
        .call(
            Method::POST,
            "/v1/events/concert/bookings",
            Some(ADMIN),
            Some(json!({"user_id": "carol", "items": [{"section_id": "floor", "qty": 5}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, sold_out) = h
        .call(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&bob),
            Some(json!({"items": [{"section_id": "floor", "qty": 4}]})),
        )
        .await;
    assert_eq!(
        (status, code(&sold_out)),
        (StatusCode::CONFLICT, "sold_out")
    );

    // Confirm (empty body), then confirm again.
    let (status, booking) = h
        .call(
            Method::POST,
            &format!("/v1/holds/{hold_id}/confirm"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["hold_id"], hold_id.as_str());
    assert_eq!(booking["payment_ref"], Value::Null);
    let (status, again) = h
        .call(
            Method::POST,
            &format!("/v1/holds/{hold_id}/confirm"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&again)),
        (StatusCode::CONFLICT, "hold_not_active")
    );
    let (status, hold_now) = h
        .call(
            Method::GET,
            &format!("/v1/holds/{hold_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, &hold_now["status"]),
        (StatusCode::OK, &json!("confirmed"))
    );

    // Release a second hold; releasing it twice is not allowed.
    let (_, second) = h
        .call(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(json!({"seats": ["B-1"], "ttl_seconds": 30})),
        )
        .await;
    let second_id = second["id"].as_str().unwrap();
    let (status, released) = h
        .call(
            Method::DELETE,
            &format!("/v1/holds/{second_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, &released["status"]),
        (StatusCode::OK, &json!("released"))
    );
    let (status, again) = h
        .call(
            Method::DELETE,
            &format!("/v1/holds/{second_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&again)),
        (StatusCode::CONFLICT, "hold_not_active")
    );
    let (status, confirm_released) = h
        .call(
            Method::POST,
            &format!("/v1/holds/{second_id}/confirm"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&confirm_released)),
        (StatusCode::CONFLICT, "hold_not_active")
    );

    // Cancel the booking: inventory back.
    let booking_id = booking["id"].as_str().unwrap();
    let (status, got) = h
        .call(
            Method::GET,
            &format!("/v1/bookings/{booking_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((status, &got["id"]), (StatusCode::OK, &json!(booking_id)));
    let (status, hidden) = h
        .call(
            Method::GET,
            &format!("/v1/bookings/{booking_id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&hidden)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, cancelled) = h
        .call(
            Method::POST,
            &format!("/v1/bookings/{booking_id}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, &cancelled["status"]),
        (StatusCode::OK, &json!("cancelled"))
    );
    assert!(cancelled["cancelled_at"].is_string());
    let (status, again) = h
        .call(
            Method::POST,
            &format!("/v1/bookings/{booking_id}/cancel"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&again)),
        (StatusCode::CONFLICT, "booking_not_active")
    );
    let (_, event) = h.call(Method::GET, "/v1/events/concert", None, None).await;
    assert_eq!(
        event["sections"][0]["available"], 5,
        "only Carol's five remain sold"
    );
    assert_eq!(event["sections"][1]["available"], 8);

    // Unknown and malformed ids.
    for path in [
        "/v1/holds/h-0-999",
        "/v1/holds/nonsense",
        "/v1/holds/h-9-1",
        "/v1/bookings/b-0-999",
    ] {
        let (status, body) = h.call(Method::GET, path, Some(&alice), None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchase_cap_and_booking_list() {
    let h = Harness::start(2).await;
    h.call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    let alice = h.user("alice");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, booking) = h
            .call(
                Method::POST,
                "/v1/events/concert/bookings",
                Some(&alice),
                Some(json!({"items": [{"section_id": "floor", "qty": 2}], "payment_ref": "pay_1"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{booking}");
        assert_eq!(booking["payment_ref"], "pay_1");
        ids.push(booking["id"].as_str().unwrap().to_string());
    }
    // max_per_user is 6: Alice owns 6 already.
    let (status, capped) = h
        .call(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(json!({"seats": ["A-1"]})),
        )
        .await;
    assert_eq!(
        (status, code(&capped)),
        (StatusCode::CONFLICT, "limit_exceeded")
    );

    // Admin purchase for bob needs user_id.
    let (status, missing) = h
        .call(
            Method::POST,
            "/v1/events/concert/bookings",
            Some(ADMIN),
            Some(json!({"seats": ["A-1"]})),
        )
        .await;
    assert_eq!(
        (status, code(&missing)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert_eq!(missing["error"]["field"], "user_id");
    let (status, for_bob) = h
        .call(
            Method::POST,
            "/v1/events/concert/bookings",
            Some(ADMIN),
            Some(json!({"user_id": "bob", "seats": ["A-1"]})),
        )
        .await;
    assert_eq!(
        (status, &for_bob["user_id"]),
        (StatusCode::CREATED, &json!("bob"))
    );

    // Alice's list: her three, newest first, paged by two.
    let (status, page) = h
        .call(Method::GET, "/v1/bookings?limit=2", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let first: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, vec![ids[2].as_str(), ids[1].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = h
        .call(
            Method::GET,
            &format!("/v1/bookings?limit=2&after={cursor}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["id"], ids[0].as_str());
    assert_eq!(rest["next_cursor"], Value::Null);

    // Naming another user is forbidden; the admin sees everyone.
    let (status, other) = h
        .call(Method::GET, "/v1/bookings?user_id=bob", Some(&alice), None)
        .await;
    assert_eq!((status, code(&other)), (StatusCode::FORBIDDEN, "forbidden"));
    let (_, all) = h
        .call(
            Method::GET,
            "/v1/bookings?event_id=concert",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 4);
    let (status, bad) = h
        .call(Method::GET, "/v1/bookings?after=garbage", Some(ADMIN), None)
        .await;
    assert_eq!(
        (status, &bad["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("after"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_replay_and_reused_keys_are_refused() {
    let h = Harness::start(2).await;
    h.call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    let alice = h.user("alice");
    let body = br#"{"items":[{"section_id":"floor","qty":1}]}"#.to_vec();
    let key = [("idempotency-key", "cart-42")];
    let first = h
        .raw(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(body.clone()),
            &key,
        )
        .await;
    let second = h
        .raw(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(first.0, StatusCode::CREATED);
    assert_eq!(first, second);
    let (_, event) = h.call(Method::GET, "/v1/events/concert", None, None).await;
    assert_eq!(
        event["sections"][0]["held"], 1,
        "the retry had no second effect"
    );

    let other = br#"{"items":[{"section_id":"floor","qty":2}]}"#.to_vec();
    let (status, reused) = h
        .raw(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(other),
            &key,
        )
        .await;
    assert_eq!(
        (status, code(&reused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );

    let (status, bad_key) = h
        .raw(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(b"{}".to_vec()),
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(
        (status, &bad_key["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("Idempotency-Key"))
    );

    // An event created without an id: the retry finds the same event.
    let body =
        br#"{"name":"Gen","sections":[{"name":"GA","price_cents":1,"capacity":5}]}"#.to_vec();
    let key = [("idempotency-key", "create-1")];
    let a = h
        .raw(
            Method::POST,
            "/v1/events",
            Some(ADMIN),
            Some(body.clone()),
            &key,
        )
        .await;
    let b = h
        .raw(Method::POST, "/v1/events", Some(ADMIN), Some(body), &key)
        .await;
    assert_eq!(a.0, StatusCode::CREATED);
    assert_eq!(a.1["id"], b.1["id"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    let h = Harness::start(1).await;
    h.call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    let alice = h.user("alice");
    let (_, before) = h.call(Method::GET, "/v1/events/concert", None, None).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "/v1/events/concert/holds",
            br#"{"items":[{"section_id":"floor","qty":"two"}]}"#.to_vec(),
            "items[0].qty",
        ),
        (
            "/v1/events/concert/holds",
            br#"{"items":[{"section_id":"floor","qty":0}]}"#.to_vec(),
            "items[0].qty",
        ),
        (
            "/v1/events/concert/holds",
            br#"{"items":[{"section_id":"nope","qty":1}]}"#.to_vec(),
            "items[0].section_id",
        ),
        (
            "/v1/events/concert/holds",
            br#"{"seats":["Z-99"]}"#.to_vec(),
            "seats[0]",
        ),
        (
            "/v1/events/concert/holds",
            br#"{"seats":["A-1","A-1"]}"#.to_vec(),
            "seats[1]",
        ),
        ("/v1/events/concert/holds", br#"{}"#.to_vec(), "items"),
        (
            "/v1/events/concert/holds",
            br#"{"seats":["A-1"],"ttl_seconds":0}"#.to_vec(),
            "ttl_seconds",
        ),
        (
            "/v1/events/concert/holds",
            br#"{"seats":["A-1"],"ttl_seconds":86401}"#.to_vec(),
            "ttl_seconds",
        ),
        (
            "/v1/events/concert/holds",
            br#"{"seats":["A-1"],"qyt":1}"#.to_vec(),
            "qyt",
        ),
        (
            "/v1/events/concert/holds",
            br#"{"seats":"#.to_vec(),
            "seats",
        ),
        ("/v1/events/concert/holds", br#"[]"#.to_vec(), "body"),
    ];
    for (path, body, field) in cases {
        let (status, error) = h
            .raw(Method::POST, path, Some(&alice), Some(body.clone()), &[])
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}: {error}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(code(&error), "invalid_input");
        let named = error["error"]["field"].as_str().unwrap_or_default();
        assert!(
            named.starts_with(field),
            "{}: field {named}, want {field}",
            String::from_utf8_lossy(&body)
        );
        assert!(error["error"]["message"].as_str().unwrap().contains(named));
    }
    let events: Vec<(Value, &str)> = vec![
        (
            json!({"name": "x", "sections": [{"name": "a", "price_cents": 1, "capacity": 0}]}),
            "sections[0].capacity",
        ),
        (
            json!({"name": "x", "sections": [{"name": "a", "price_cents": 1}]}),
            "sections[0]",
        ),
        (json!({"name": "x", "sections": []}), "sections"),
        (
            json!({"id": "bad id!", "name": "x", "sections": [{"name": "a", "price_cents": 1, "capacity": 1}]}),
            "id",
        ),
        (
            json!({"name": "x", "starts_at": "soon", "sections": [{"name": "a", "price_cents": 1, "capacity": 1}]}),
            "starts_at",
        ),
        (
            json!({"name": "x", "sections": [{"name": "a", "price_cents": -1, "capacity": 1}]}),
            "sections[0].price_cents",
        ),
        (
            json!({"name": "x", "hold_ttl_seconds": 0, "sections": [{"name": "a", "price_cents": 1, "capacity": 1}]}),
            "hold_ttl_seconds",
        ),
    ];
    for (body, field) in events {
        let (status, error) = h
            .call(Method::POST, "/v1/events", Some(ADMIN), Some(body.clone()))
            .await;
        assert_eq!(
            (status, code(&error)),
            (StatusCode::BAD_REQUEST, "invalid_input"),
            "{body}"
        );
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let (_, after) = h.call(Method::GET, "/v1/events/concert", None, None).await;
    assert_eq!(before, after);
    let (_, page) = h.call(Method::GET, "/v1/events", None, None).await;
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        1,
        "no bad event was created"
    );

    // Over the body limit: 413 in the same shape.
    let huge = vec![b' '; server::limits::BODY_BYTES_MAX + 1];
    let (status, error) = h
        .raw(Method::POST, "/v1/events", Some(ADMIN), Some(huge), &[])
        .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_refusals_have_the_documented_statuses() {
    let h = Harness::start(1).await;
    let alice = h.user("alice");
    let (status, e) = h
        .call(Method::POST, "/v1/events", None, Some(concert()))
        .await;
    assert_eq!(
        (status, code(&e)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, e) = h
        .call(Method::POST, "/v1/events", Some("garbage"), Some(concert()))
        .await;
    assert_eq!(
        (status, code(&e)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, e) = h
        .call(Method::POST, "/v1/events", Some(&alice), Some(concert()))
        .await;
    assert_eq!((status, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    h.call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    let (status, e) = h
        .call(
            Method::POST,
            "/v1/events/concert/holds",
            Some(&alice),
            Some(json!({"user_id": "bob", "seats": ["A-1"]})),
        )
        .await;
    assert_eq!((status, code(&e)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, e) = h.call(Method::GET, "/v1/bookings", None, None).await;
    assert_eq!(
        (status, code(&e)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_routes_answer() {
    let h = Harness::start(2).await;
    let (status, health) = h.call(Method::GET, "/health", None, None).await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("ok")));
    let (status, ready) = h.call(Method::GET, "/ready", None, None).await;
    assert_eq!(
        (status, &ready["status"]),
        (StatusCode::OK, &json!("ready"))
    );
    assert_eq!(ready["shards"].as_array().unwrap().len(), 2);
    h.call(Method::POST, "/v1/events", Some(ADMIN), Some(concert()))
        .await;
    let (status, metrics) = h.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("boxoffice_http_requests_total"), "{text}");
    assert!(text.contains("boxoffice_wal_fsync_seconds"), "{text}");
    let (status, doc) = h.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/events",
        "/v1/events/{event_id}/holds",
        "/v1/holds/{hold_id}/confirm",
        "/v1/bookings",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let (status, e) = h.call(Method::GET, "/nowhere", None, None).await;
    assert_eq!((status, code(&e)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, e) = h.call(Method::PUT, "/v1/events", None, None).await;
    assert_eq!(
        (status, code(&e)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hall_of_one_hundred_thousand_seats_in_one_row() {
    let h = Harness::start(1).await;
    let body = json!({"id": "hall", "name": "Hall", "sections": [
        {"id": "floor", "name": "Floor", "price_cents": 1, "seats": {"rows": [{"label": "A", "count": 100000}]}}]});
    let (status, event) = h
        .call(Method::POST, "/v1/events", Some(ADMIN), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert_eq!(event["sections"][0]["capacity"], 100_000);
    let alice = h.user("alice");
    let (status, hold) = h
        .call(
            Method::POST,
            "/v1/events/hall/holds",
            Some(&alice),
            Some(json!({"seats": ["A-100000", "A-1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let (status, map) = h
        .call(Method::GET, "/v1/events/hall/seats", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        map["sections"][0]["rows"][0]["seats"][99_999],
        json!({"id": "A-100000", "status": "held"})
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_is_not_utf8_is_invalid_input_in_the_api_shape() {
    let t = Harness::start(1).await;
    for path in [
        "/v1/events/%FF",
        "/v1/holds/%C3%28",
        "/v1/bookings/%FE/cancel",
    ] {
        let method = if path.ends_with("cancel") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, body) = t.call(method, path, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(code(&body), "invalid_input", "{path}");
        assert_eq!(body["error"]["field"], "path", "{path}: {body}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let t = Harness::start(1).await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {ADMIN}");
        let (status, body) = t
            .raw(
                Method::POST,
                "/v1/events",
                None,
                Some(concert().to_string().into_bytes()),
                &[("authorization", &auth)],
            )
            .await;
        // The first creates the event, the others find it exists: either way, admitted.
        assert!(
            status == StatusCode::CREATED || code(&body) == "event_exists",
            "{scheme}: {status} {body}"
        );
    }
    let (status, _) = t
        .raw(
            Method::POST,
            "/v1/events",
            None,
            Some(concert().to_string().into_bytes()),
            &[("authorization", &format!("Basic {ADMIN}"))],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another scheme is refused"
    );
    t.stop().await;
}
