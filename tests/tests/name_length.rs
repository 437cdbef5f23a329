//! Event and section names are 1 to `NAME_LEN_MAX` characters (not bytes), as the API
//! document's `maxLength` says: a name of that many three-byte characters is accepted,
//! one character more is refused with 400 `invalid_input` naming the field, and the
//! served document's `maxLength` is the engine's limit.

use engine::limits::NAME_LEN_MAX;
use harness::{code, Launch, Server, ADMIN};
use serde_json::{json, Value};

/// An event whose name and section name are `name` and `section_name`.
fn event(id: &str, name: &str, section_name: &str) -> Value {
    json!({"id": id, "name": name,
           "sections": [{"id": "ga", "name": section_name, "price_cents": 100, "capacity": 5}]})
}

#[test]
fn names_count_characters_as_the_api_document_says() {
    let server = Server::start(Launch::default());
    // '席' is three bytes in UTF-8: the longest name is three times the limit in bytes.
    let longest = "席".repeat(NAME_LEN_MAX);
    let too_long = "席".repeat(NAME_LEN_MAX + 1);
    assert!(longest.len() > NAME_LEN_MAX);

    let (status, body) = server.call(
        "POST",
        "/v1/events",
        Some(ADMIN),
        Some(&event("cjk", &longest, &longest)),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], longest.as_str());
    assert_eq!(body["sections"][0]["name"], longest.as_str());

    for (id, name, section_name, field) in [
        ("long-event", too_long.as_str(), "Floor", "name"),
        (
            "long-section",
            "Show",
            too_long.as_str(),
            "sections[0].name",
        ),
    ] {
        let (status, body) = server.call(
            "POST",
            "/v1/events",
            Some(ADMIN),
            Some(&event(id, name, section_name)),
        );
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "invalid_input", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        let (status, _) = server.call("GET", &format!("/v1/events/{id}"), Some(ADMIN), None);
        assert_eq!(status, 404, "a refused event is not created");
    }

    let (status, document) = server.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    let schemas = &document["components"]["schemas"];
    for schema in ["CreateEventBody", "SectionBody"] {
        assert_eq!(
            schemas[schema]["properties"]["name"]["maxLength"],
            json!(NAME_LEN_MAX),
            "{schema}"
        );
    }
}
