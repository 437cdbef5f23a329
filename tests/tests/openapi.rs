//! The OpenAPI document as mainstream tools see it, through the real binary:
//! `openapi-spec-validator` accepts the served `/openapi.json` (and refuses a copy with a
//! repeated operationId, so the check can fail), and a client generated from it by
//! `openapi-python-client` runs a whole sale unedited (tests/py/generated_client_sale.py).
//!
//! Both tools come from PyPI (`.ci/run` installs them). Outside CI a missing tool skips
//! its test with a message; under `CI=true` it fails.

use std::path::{Path, PathBuf};

use harness::{run_tool, tool_available, Launch, Server, ADMIN, SECRET};
use serde_json::Value;

/// The served document, written to `dir/name`.
fn served_document(server: &Server, dir: &Path, name: &str) -> (Value, PathBuf) {
    let (status, document) = server.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200, "{document}");
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    (document, path)
}

#[test]
fn the_served_document_is_valid_openapi_and_a_broken_one_is_not() {
    if !tool_available(
        "openapi-spec-validator",
        "pip install openapi-spec-validator",
    ) {
        return;
    }
    let server = Server::start(Launch::default());
    let dir = tempfile::tempdir().unwrap();
    let (mut document, path) = served_document(&server, dir.path(), "openapi.json");
    let output = run_tool("openapi-spec-validator", &[&path]);
    assert!(output.status.success(), "the served document is invalid");

    // The same document with one operationId repeated must be refused.
    document["paths"]["/v1/holds/{hold_id}"]["get"]["operationId"] = "getEvent".into();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, serde_json::to_vec(&document).unwrap()).unwrap();
    let output = run_tool("openapi-spec-validator", &[&broken]);
    assert!(
        !output.status.success(),
        "the validator accepted a repeated operationId"
    );
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("getEvent"), "{said}");
}

#[test]
fn a_generated_python_client_runs_a_whole_sale() {
    if !tool_available("openapi-python-client", "pip install openapi-python-client") {
        return;
    }
    let server = Server::start(Launch::default());
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = served_document(&server, dir.path(), "openapi.json");
    let client = dir.path().join("boxoffice_client");
    let output = run_tool(
        "openapi-python-client",
        &[
            "generate".as_ref(),
            "--path".as_ref(),
            path.as_os_str(),
            "--meta".as_ref(),
            "none".as_ref(),
            "--output-path".as_ref(),
            client.as_os_str(),
        ],
    );
    assert!(output.status.success(), "the client was not generated");
    let said = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        !said.to_lowercase().contains("warning"),
        "the generator warned about the document: {said}"
    );
    assert!(client.join("api/holds/place_hold.py").is_file());

    // The buyer's token, minted by the CLI as an operator would.
    let token = std::process::Command::new(harness::binary())
        .args(["token", "--user", "alice", "--data-dir"])
        .arg(server.data_dir())
        .env("BOXOFFICE_JWT_SECRET", SECRET)
        .output()
        .expect("boxoffice token runs");
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8(token.stdout).unwrap();

    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/py/generated_client_sale.py");
    let base_url = format!("http://127.0.0.1:{}", server.port());
    let output = run_tool(
        "python3",
        &[
            driver,
            &dir.path().display().to_string(),
            &base_url,
            ADMIN,
            token.trim(),
            "alice",
        ],
    );
    assert!(
        output.status.success(),
        "the sale through the generated client failed"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("a whole sale passed"));
}

/// Every key of `object` is in the `required` list of the schema `name`: a field the
/// server always sends (null when empty) is required and nullable, so a generated client
/// reads it as always there.
fn assert_all_required(document: &Value, name: &str, object: &Value) {
    let schema = &document["components"]["schemas"][name];
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} has no required list: {schema}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let keys: Vec<&String> = object.as_object().expect("an object").keys().collect();
    assert!(!keys.is_empty(), "{name}: {object}");
    for key in keys {
        assert!(
            required.contains(&key.as_str()),
            "{name}.{key} is always sent ({object}) but not required: {required:?}"
        );
    }
}

#[test]
fn every_field_a_response_always_sends_is_required_in_its_schema() {
    let server = Server::start(Launch::default());
    let (status, document) = server.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    // No start time, no cap: the nullable fields are sent as null.
    let event = serde_json::json!({"id": "req", "name": "Req", "sections": [
        {"id": "ga", "name": "GA", "price_cents": 100, "capacity": 1}]});
    let (status, event) = server.call("POST", "/v1/events", Some(ADMIN), Some(&event));
    assert_eq!(status, 201, "{event}");
    assert!(event["starts_at"].is_null() && event["max_per_user"].is_null());
    let alice = harness::user_token("alice");
    let buy = serde_json::json!({"items": [{"section_id": "ga", "qty": 1}]});
    let (status, booking) =
        server.call("POST", "/v1/events/req/bookings", Some(&alice), Some(&buy));
    assert_eq!(status, 201, "{booking}");
    assert!(booking["payment_ref"].is_null() && booking["cancelled_at"].is_null());
    let bob = harness::user_token("bob");
    let join = serde_json::json!({"section_id": "ga", "qty": 1});
    let (status, entry) = server.call("POST", "/v1/events/req/waitlist", Some(&bob), Some(&join));
    assert_eq!(status, 201, "{entry}");
    assert!(entry["hold_id"].is_null() && entry["offer_expires_at"].is_null());
    let (status, page) = server.call("GET", "/v1/bookings", Some(&alice), None);
    assert_eq!(status, 200, "{page}");
    assert!(page["next_cursor"].is_null());
    assert_all_required(&document, "EventJson", &event);
    assert_all_required(&document, "BookingJson", &booking);
    assert_all_required(&document, "EntryJson", &entry);
    assert_all_required(&document, "BookingPage", &page);
}
