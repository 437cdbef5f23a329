//! The OpenAPI 3.1 document served at `GET /openapi.json`, built from one table:
//! `operations()` lists every route once, with its `operationId`, who may call it, its
//! parameters, its body, its success answer with the `links` a client follows next, and
//! every error code its handler can answer. The error statuses, their descriptions and
//! the schemas of the named types all follow from that entry. The table is kept by
//! resource: `operations()` joins `event_operations()`, `hold_operations()`,
//! `booking_operations()`, `waitlist_operations()`, `ops_operations()` and
//! `page_operations()`, in that order.
//!
//! **To document a new route, add one entry to its resource's function** (handlers carry
//! no OpenAPI annotations), e.g.
//!
//! ```text
//! Op::post("/v1/holds/{hold_id}/extend", "extendHold", "holds", "Moves a live hold's expiry.")
//!     .user()                        // .admin() for the admin token; neither: anyone
//!     .path_param(HOLD_ID)           // query parameters: .query::<SomeParams>()
//!     .idempotency_key()             // if it takes `Idempotency-Key`
//!     .body::<ExtendBody>(true)      // any ToSchema type: its schemas are added
//!     .answers::<HoldJson>(200, "The hold with its new `expires_at`.")
//!     .link("confirmHold", "confirmHold", "hold_id", "Confirm this hold.")
//!     .errors(&with_outcome(&[InvalidInput, Unauthorized, NotFound, HoldNotActive,
//!         HoldExpired, ExtensionLimit, IdempotencyKeyReused])),
//! ```
//!
//! `with_shard` adds what any route that reaches a shard can answer (`overloaded`,
//! `unavailable`, `request_timeout`); `with_outcome` adds to that `outcome_unknown`, which
//! every command route (one that queues a command, not a read) can answer. Every
//! operation takes the optional `X-Request-Id` header and every response carries it. A new error code goes into [`ErrorCode`] (dto.rs,
//! with its status); the tests below check that every operation id is unique, every
//! response described, every link resolvable, and every code the server answers listed.

use std::collections::BTreeMap;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, Ref, RefOr, Required};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToSchema};

use super::bookings::BookingListParams;
use super::dto::ErrorCode::{self, *};
use super::dto::{
    BookingJson, BookingPage, ConfirmBody, CreateEventBody, ErrorJson, EventJson, EventPage,
    HealthJson, HoldBody, HoldJson, PurchaseBody, ReadyJson, SeatMapJson,
};
use super::dto_sale::{EntryJson, ExtendBody, JoinBody};
use super::events::EventListParams;

/// The API's OpenAPI document: `ApiDoc::openapi()`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "boxoffice",
        description = "Ticket reservation engine: events, holds, bookings. JSON in and out; \
            times are RFC 3339 UTC; money is integer minor units. Every error is \
            `{\"error\": {\"code\", \"message\", \"field\"?, \"request_id\"?}}` with a stable `code`. \
            Any request may also be answered 405 `method_not_allowed` (a method the path does \
            not have) or 413 `payload_too_large` (a declared body over 1 MiB)."
    ),
    modifiers(&Operations),
)]
pub struct ApiDoc;

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Anyone, no token.
    Public,
    /// A user token (or the admin token acting for a user).
    User,
    /// The admin token only.
    Admin,
}

/// A success answer: status, description, media type and schema, links.
struct Answer {
    status: u16,
    description: &'static str,
    content_type: &'static str,
    schema: RefOr<Schema>,
    links: Vec<LinkSpec>,
}

/// A link: name, target operation, its parameter, the answer's JSON pointer giving the
/// value, description.
type LinkSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// One operation of the API, as documented.
struct Op {
    method: HttpMethod,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    who: Who,
    params: Vec<utoipa::openapi::path::Parameter>,
    body: Option<(RefOr<Schema>, bool)>,
    answers: Vec<Answer>,
    errors: Vec<ErrorCode>,
    schemas: Vec<(String, RefOr<Schema>)>,
}

/// A path parameter: name and description.
type PathParam = (&'static str, &'static str);

const EVENT_ID: PathParam = ("event_id", "The event's id.");
const HOLD_ID: PathParam = (
    "hold_id",
    "The hold's id, as `id` of a hold (`h-<shard>-<n>`).",
);
const BOOKING_ID: PathParam = (
    "booking_id",
    "The booking's id, as `id` of a booking (`b-<shard>-<n>`).",
);
const ENTRY_ID: PathParam = (
    "entry_id",
    "The waiting-list entry's id, as `id` of an entry (`w-<shard>-<n>`).",
);

/// What the `X-Request-Id` header is, in requests and in answers.
fn request_id_doc() -> String {
    format!(
        "The request's id: the client's own when it is 1 to {} visible ASCII characters, \
         else (absent or not such) one the server generates. Answered in this header and in \
         error bodies' `request_id`, and written in the server's access log line.",
        crate::limits::REQUEST_ID_LEN_MAX
    )
}

impl Op {
    fn new(
        method: HttpMethod,
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        summary: &'static str,
    ) -> Op {
        Op {
            method,
            path,
            id,
            tag,
            summary,
            who: Who::Public,
            params: Vec::new(),
            body: None,
            answers: Vec::new(),
            errors: Vec::new(),
            schemas: Vec::new(),
        }
    }
    fn get(path: &'static str, id: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new(HttpMethod::Get, path, id, tag, summary)
    }
    fn post(path: &'static str, id: &'static str, tag: &'static str, summary: &'static str) -> Op {
        Op::new(HttpMethod::Post, path, id, tag, summary)
    }
    fn delete(
        path: &'static str,
        id: &'static str,
        tag: &'static str,
        summary: &'static str,
    ) -> Op {
        Op::new(HttpMethod::Delete, path, id, tag, summary)
    }

    /// Needs a user token (or the admin token acting for a user).
    fn user(mut self) -> Op {
        self.who = Who::User;
        self
    }
    /// Needs the admin token.
    fn admin(mut self) -> Op {
        self.who = Who::Admin;
        self
    }

    fn path_param(mut self, (name, description): PathParam) -> Op {
        self.params.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        self
    }

    /// The optional `Idempotency-Key` header of a state-changing request.
    fn idempotency_key(mut self) -> Op {
        let max = crate::limits::IDEMPOTENCY_KEY_LEN_MAX;
        self.params.push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Retry safely: the same key with the same request gets the first answer \
                     without a second effect; with another request, 422 `idempotency_key_reused`.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(format!("^[!-~]{{1,{max}}}$"))),
                ))
                .build(),
        );
        self
    }

    /// Query parameters from a handler's parameter struct. Each is `allowEmptyValue`: an
    /// empty value (`?limit=`, as the route templates write them) is the parameter absent
    /// (`extract::parse_query`). utoipa has no field for the keyword, so it is set as an
    /// extension, which serializes among the parameter's own keys.
    fn query<P: IntoParams>(mut self) -> Op {
        self.params.extend(
            P::into_params(|| Some(ParameterIn::Query))
                .into_iter()
                .map(|mut p| {
                    p.extensions
                        .get_or_insert_with(Default::default)
                        .insert("allowEmptyValue".into(), true.into());
                    p
                }),
        );
        self
    }

    /// The JSON request body (`required: false` when an empty body is fine).
    fn body<T: ToSchema>(mut self, required: bool) -> Op {
        self.body = Some((self.schema_of::<T>(), required));
        self
    }

    /// A JSON success answer.
    fn answers<T: ToSchema>(mut self, status: u16, description: &'static str) -> Op {
        let schema = self.schema_of::<T>();
        self.answers.push(Answer {
            status,
            description,
            content_type: "application/json",
            schema,
            links: Vec::new(),
        });
        self
    }

    /// A JSON answer that is one of two shapes.
    fn answers_either<A: ToSchema, B: ToSchema>(
        mut self,
        status: u16,
        description: &'static str,
    ) -> Op {
        let one_of = OneOfBuilder::new()
            .item(self.schema_of::<A>())
            .item(self.schema_of::<B>())
            .build();
        self.answers.push(Answer {
            status,
            description,
            content_type: "application/json",
            schema: RefOr::T(Schema::OneOf(one_of)),
            links: Vec::new(),
        });
        self
    }

    /// A success answer of another media type.
    fn answers_as(
        mut self,
        status: u16,
        description: &'static str,
        content_type: &'static str,
        schema: Schema,
    ) -> Op {
        self.answers.push(Answer {
            status,
            description,
            content_type,
            schema: RefOr::T(schema),
            links: Vec::new(),
        });
        self
    }

    /// A link from the last answer: `name` calls `operation` with `parameter` taken from
    /// the answer's `id`.
    fn link(
        self,
        name: &'static str,
        operation: &'static str,
        parameter: &'static str,
        description: &'static str,
    ) -> Op {
        self.link_from(name, operation, parameter, "/id", description)
    }

    /// The links from a booking answer: read it, cancel it.
    fn booking_links(self) -> Op {
        self.link(
            "getBooking",
            "getBooking",
            "booking_id",
            "Read this booking.",
        )
        .link(
            "cancelBooking",
            "cancelBooking",
            "booking_id",
            "Cancel this booking.",
        )
    }

    /// The links from a live hold's answer: confirm it, release it.
    fn live_hold_links(self) -> Op {
        self.link(
            "confirmHold",
            "confirmHold",
            "hold_id",
            "Confirm this hold into a booking.",
        )
        .link(
            "releaseHold",
            "releaseHold",
            "hold_id",
            "Release this hold now.",
        )
    }

    /// A link from the last answer whose `parameter` is the answer's field at `pointer`.
    fn link_from(
        mut self,
        name: &'static str,
        operation: &'static str,
        parameter: &'static str,
        pointer: &'static str,
        description: &'static str,
    ) -> Op {
        self.answers
            .last_mut()
            .expect("an answer before its links")
            .links
            .push((name, operation, parameter, pointer, description));
        self
    }

    /// An optional request header parameter.
    fn header_param(mut self, name: &'static str, description: &'static str) -> Op {
        self.params.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        self
    }

    /// Every error code the handler can answer.
    fn errors(mut self, codes: &[ErrorCode]) -> Op {
        self.errors = codes.to_vec();
        self
    }

    /// A `$ref` to `T`'s schema, collecting it and the schemas it names.
    fn schema_of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        T::schemas(&mut self.schemas);
        self.schemas.push((T::name().into_owned(), T::schema()));
        RefOr::Ref(Ref::from_schema_name(T::name()))
    }

    fn build(mut self, components: &mut Components) -> (&'static str, HttpMethod, Operation) {
        // Any value is accepted (one that is no valid id is replaced), so no pattern.
        self.params.push(
            ParameterBuilder::new()
                .name("X-Request-Id")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(request_id_doc()))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        );
        for (name, schema) in self.schemas {
            components.schemas.entry(name).or_insert(schema);
        }
        let mut responses = ResponsesBuilder::new();
        for answer in self.answers {
            let mut response = ResponseBuilder::new()
                .description(answer.description)
                .content(
                    answer.content_type,
                    ContentBuilder::new().schema(Some(answer.schema)).build(),
                )
                .header("X-Request-Id", request_id_header());
            for (name, operation, parameter, pointer, description) in answer.links {
                response = response.link(name, link(operation, parameter, pointer, description));
            }
            responses = responses.response(answer.status.to_string(), response.build());
        }
        for (status, codes) in by_status(&self.errors) {
            responses = responses.response(status.to_string(), error_response(status, &codes));
        }
        let mut operation = OperationBuilder::new()
            .operation_id(Some(self.id))
            .tag(self.tag)
            .summary(Some(self.summary))
            .parameters(Some(self.params))
            .responses(responses.build());
        if let Some((schema, required)) = self.body {
            let required = if required {
                Required::True
            } else {
                Required::False
            };
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(required))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(schema)).build(),
                    )
                    .build(),
            ));
        }
        let who = match self.who {
            Who::Public => None,
            Who::User => Some(
                "Needs a user token, or the admin token acting for a user; a user sees and \
                 acts on only their own holds and bookings.",
            ),
            Who::Admin => Some("Needs the admin token."),
        };
        if let Some(who) = who {
            operation = operation
                .description(Some(who))
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        (self.path, self.method, operation.build())
    }
}

/// The `X-Request-Id` answer header.
fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(request_id_doc()))
        .build()
}

/// A link to `operation`, passing the answer's field at `pointer` as its `parameter`.
///
/// utoipa 5.5 serializes `Link::operation_id` as `operation_id`, which is no field of a
/// Link Object: the OpenAPI spelling `operationId` is set through the (flattened)
/// extensions map instead.
fn link(operation: &str, parameter: &str, pointer: &str, description: &str) -> Link {
    LinkBuilder::new()
        .parameter(parameter, format!("$response.body#{pointer}"))
        .description(description)
        .extensions(Some(Extensions::from_iter([(
            "operationId",
            serde_json::Value::from(operation),
        )])))
        .build()
}

/// Error codes grouped by their status, in status order.
fn by_status(codes: &[ErrorCode]) -> BTreeMap<u16, Vec<ErrorCode>> {
    let mut grouped: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for &code in codes {
        grouped.entry(code.status()).or_default().push(code);
    }
    grouped
}

/// An error response: the error body, described by the codes it can carry.
fn error_response(status: u16, codes: &[ErrorCode]) -> utoipa::openapi::Response {
    let list = codes
        .iter()
        .map(|c| format!("`{}`", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let what = match status {
        400 => "Malformed or invalid input; `field` names it",
        401 => "No valid token (missing, malformed, wrongly signed or expired)",
        403 => "The token may not do this (a user token on an admin route, or naming another user)",
        404 => "Not found (another user's hold or booking is not found either)",
        408 => "The request took too long",
        409 => "A conflict with the current state",
        410 => "The hold is past its `expires_at`",
        413 => "The request body is over 1 MiB",
        422 => "The `Idempotency-Key` was used before with another request",
        503 if codes.contains(&OutcomeUnknown) => {
            "Refused for now, or (`outcome_unknown`) queued to its shard with no outcome in \
             time, so it may still take effect; retry after `Retry-After` seconds, with the same \
             `Idempotency-Key`"
        }
        503 => "Refused for now; retry after `Retry-After` seconds",
        _ => "An error",
    };
    let mut response = ResponseBuilder::new()
        .description(format!("{what}: {list}."))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name(ErrorJson::name()))))
                .build(),
        )
        .header("X-Request-Id", request_id_header());
    if status == 503 {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}

/// The errors any route that reaches a shard can answer besides its own.
const SHARD: [ErrorCode; 3] = [Overloaded, Unavailable, RequestTimeout];

/// What placing tickets can answer besides [`SHARD`] and `outcome_unknown`: a hold and a
/// purchase alike.
const PLACING: [ErrorCode; 11] = [
    InvalidInput,
    Unauthorized,
    Forbidden,
    NotFound,
    SoldOut,
    SeatTaken,
    LimitExceeded,
    NoAdjacentSeats,
    PayloadTooLarge,
    IdempotencyKeyReused,
    OverCapacity,
];

/// `codes` plus [`SHARD`].
fn with_shard(codes: &[ErrorCode]) -> Vec<ErrorCode> {
    codes.iter().chain(SHARD.iter()).copied().collect()
}

/// `codes` plus [`SHARD`] plus `outcome_unknown`: a command route (its command was queued,
/// and the shard did not answer within the outcome wait).
fn with_outcome(codes: &[ErrorCode]) -> Vec<ErrorCode> {
    let mut all = with_shard(codes);
    all.push(OutcomeUnknown);
    all
}

/// What the stream's 200 answer carries.
const STREAM_DOC: &str = "`text/event-stream`. The first message is `event: snapshot` whose \
    `data:` is the event as `GET /v1/events/{event_id}` answers it plus `seats` (the \
    `sections` of `GET /v1/events/{event_id}/seats`); then one `event: change` per durable \
    batch that touched the event, `data: {\"sections\": [{\"id\", \"available\", \"held\", \
    \"sold\", \"waiting\", \"set_aside\"}], \"seats\": {\"A-12\": \"held\", ...}}` with only what \
    changed. Every message's `id:` is the shard's log sequence number after that batch, \
    strictly increasing; nothing is sent before it is durable. A comment line every 15 s \
    keeps an idle stream open; a client that cannot keep up is disconnected.";

/// Every operation of the API, in the order of the design's table: by resource, each
/// resource's operations in that order.
fn operations() -> Vec<Op> {
    [
        event_operations(),
        hold_operations(),
        booking_operations(),
        waitlist_operations(),
        ops_operations(),
        page_operations(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The schema of a text answer (the stream, the metrics, the pages).
fn text() -> Schema {
    Schema::Object(ObjectBuilder::new().schema_type(Type::String).build())
}

/// The events (tag `events`).
fn event_operations() -> Vec<Op> {
    vec![
        create_event(),
        Op::get(
            "/v1/events",
            "listEvents",
            "events",
            "Lists events ordered by id, with live counts.",
        )
        .query::<EventListParams>()
        .answers::<EventPage>(200, "A page of events.")
        .errors(&with_shard(&[InvalidInput])),
        Op::get(
            "/v1/events/{event_id}",
            "getEvent",
            "events",
            "One event with live per-section counts.",
        )
        .path_param(EVENT_ID)
        .answers::<EventJson>(200, "The event.")
        .errors(&with_shard(&[InvalidInput, NotFound])),
        Op::get(
            "/v1/events/{event_id}/seats",
            "getSeats",
            "events",
            "Every seat of the event's seated sections: `free`, `held` or `sold`.",
        )
        .path_param(EVENT_ID)
        .answers::<SeatMapJson>(200, "The seat map.")
        .errors(&with_shard(&[InvalidInput, NotFound])),
        Op::get(
            "/v1/events/{event_id}/stream",
            "streamEvent",
            "events",
            "The event's live availability as Server-Sent Events (anyone).",
        )
        .path_param(EVENT_ID)
        .header_param(
            "Last-Event-ID",
            "The `id:` of the last message received: the stream resumes with exactly the \
                 changes after it, or starts with a fresh snapshot when that point is too old \
                 (or is not a number).",
        )
        .answers_as(200, STREAM_DOC, "text/event-stream", text())
        .errors(&[InvalidInput, NotFound, Overloaded, Unavailable]),
    ]
}

/// `POST /v1/events`, with the links a client follows next.
fn create_event() -> Op {
    Op::post(
        "/v1/events",
        "createEvent",
        "events",
        "Creates an event with its sections (admin).",
    )
    .admin()
    .idempotency_key()
    .body::<CreateEventBody>(true)
    .answers::<EventJson>(201, "The event, created, with its live counts.")
    .link(
        "placeHold",
        "placeHold",
        "event_id",
        "Hold tickets of this event.",
    )
    .link(
        "purchase",
        "purchase",
        "event_id",
        "Buy tickets of this event at once.",
    )
    .link(
        "getEvent",
        "getEvent",
        "event_id",
        "Read this event's live counts.",
    )
    .link(
        "getSeats",
        "getSeats",
        "event_id",
        "Read this event's seats.",
    )
    .link(
        "joinWaitlist",
        "joinWaitlist",
        "event_id",
        "Wait for tickets of a section of this event.",
    )
    .errors(&with_outcome(&[
        InvalidInput,
        Unauthorized,
        Forbidden,
        EventExists,
        PayloadTooLarge,
        IdempotencyKeyReused,
        OverCapacity,
    ]))
}

/// The holds (tag `holds`).
fn hold_operations() -> Vec<Op> {
    vec![
        place_hold(),
        Op::get(
            "/v1/holds/{hold_id}",
            "getHold",
            "holds",
            "The hold, with its status now (owner).",
        )
        .user()
        .path_param(HOLD_ID)
        .answers::<HoldJson>(200, "The hold.")
        .errors(&with_shard(&[InvalidInput, Unauthorized, NotFound])),
        Op::post(
            "/v1/holds/{hold_id}/confirm",
            "confirmHold",
            "holds",
            "Confirms a live hold into a booking (owner); a waiting-list offer's entry becomes \
             `accepted`.",
        )
        .user()
        .path_param(HOLD_ID)
        .idempotency_key()
        .body::<ConfirmBody>(false)
        .answers::<BookingJson>(201, "The booking, `confirmed`.")
        .booking_links()
        .errors(&with_outcome(&[
            InvalidInput,
            Unauthorized,
            NotFound,
            HoldNotActive,
            HoldExpired,
            PayloadTooLarge,
            IdempotencyKeyReused,
            OverCapacity,
        ])),
        Op::delete(
            "/v1/holds/{hold_id}",
            "releaseHold",
            "holds",
            "Releases a live hold now; its tickets return to sale, or to the section's waiting \
             list in the same decision (owner).",
        )
        .user()
        .path_param(HOLD_ID)
        .idempotency_key()
        .answers::<HoldJson>(200, "The hold, `released`.")
        .errors(&with_outcome(&[
            InvalidInput,
            Unauthorized,
            NotFound,
            HoldNotActive,
            HoldExpired,
            IdempotencyKeyReused,
        ])),
        Op::post(
            "/v1/holds/{hold_id}/extend",
            "extendHold",
            "holds",
            "Moves a live hold's `expires_at` to now + `ttl_seconds` (longer or shorter), never \
             past `created_at` + 2 h (owner).",
        )
        .user()
        .path_param(HOLD_ID)
        .idempotency_key()
        .body::<ExtendBody>(true)
        .answers::<HoldJson>(200, "The hold with its new `expires_at`.")
        .live_hold_links()
        .errors(&with_outcome(&[
            InvalidInput,
            Unauthorized,
            NotFound,
            HoldNotActive,
            ExtensionLimit,
            HoldExpired,
            PayloadTooLarge,
            IdempotencyKeyReused,
        ])),
    ]
}

/// `POST /v1/events/{event_id}/holds`, with the links a client follows next.
fn place_hold() -> Op {
    Op::post(
        "/v1/events/{event_id}/holds",
        "placeHold",
        "holds",
        "Holds general-admission quantities, named seats and/or seats picked by the server \
         (`best_available`), all or nothing, until `expires_at`.",
    )
    .user()
    .path_param(EVENT_ID)
    .idempotency_key()
    .body::<HoldBody>(true)
    .answers::<HoldJson>(
        201,
        "The hold, `held` until `expires_at`, with the seats picked.",
    )
    .link("getHold", "getHold", "hold_id", "Read this hold.")
    .live_hold_links()
    .link(
        "extendHold",
        "extendHold",
        "hold_id",
        "Move this hold's expiry.",
    )
    .errors(&with_outcome(&PLACING))
}

/// The bookings (tag `bookings`).
fn booking_operations() -> Vec<Op> {
    vec![
        Op::post(
            "/v1/events/{event_id}/bookings",
            "purchase",
            "bookings",
            "Buys at once: hold and confirm as one decision (quantities, named seats and/or \
             `best_available`).",
        )
        .user()
        .path_param(EVENT_ID)
        .idempotency_key()
        .body::<PurchaseBody>(true)
        .answers::<BookingJson>(201, "The booking, `confirmed`.")
        .booking_links()
        .errors(&with_outcome(&PLACING)),
        Op::get(
            "/v1/bookings/{booking_id}",
            "getBooking",
            "bookings",
            "One booking (owner).",
        )
        .user()
        .path_param(BOOKING_ID)
        .answers::<BookingJson>(200, "The booking.")
        .errors(&with_shard(&[InvalidInput, Unauthorized, NotFound])),
        Op::get(
            "/v1/bookings",
            "listBookings",
            "bookings",
            "Bookings, newest first, cursor-paged; a user sees only their own.",
        )
        .user()
        .query::<BookingListParams>()
        .answers::<BookingPage>(200, "A page of bookings.")
        .errors(&with_shard(&[InvalidInput, Unauthorized, Forbidden])),
        Op::post(
            "/v1/bookings/{booking_id}/cancel",
            "cancelBooking",
            "bookings",
            "Cancels a booking; its tickets return to sale, or to the section's waiting list in \
             the same decision (owner).",
        )
        .user()
        .path_param(BOOKING_ID)
        .idempotency_key()
        .answers::<BookingJson>(200, "The booking, `cancelled`.")
        .errors(&with_outcome(&[
            InvalidInput,
            Unauthorized,
            NotFound,
            BookingNotActive,
            IdempotencyKeyReused,
        ])),
    ]
}

/// The waiting list (tag `waitlist`).
fn waitlist_operations() -> Vec<Op> {
    vec![
        join_waitlist(),
        Op::get(
            "/v1/waitlist/{entry_id}",
            "getWaitlistEntry",
            "waitlist",
            "The entry, with its status and position now (owner); once `offered`, `hold_id` \
             is the offer to confirm.",
        )
        .user()
        .path_param(ENTRY_ID)
        .answers::<EntryJson>(200, "The entry.")
        .link_from(
            "confirmOffer",
            "confirmHold",
            "hold_id",
            "/hold_id",
            "Confirm the entry's offer (once `offered`).",
        )
        .errors(&with_shard(&[InvalidInput, Unauthorized, NotFound])),
        Op::delete(
            "/v1/waitlist/{entry_id}",
            "leaveWaitlist",
            "waitlist",
            "Leaves the waiting list; an outstanding offer is released and passed on (owner).",
        )
        .user()
        .path_param(ENTRY_ID)
        .idempotency_key()
        .answers::<EntryJson>(200, "The entry, `left`.")
        .errors(&with_outcome(&[
            InvalidInput,
            Unauthorized,
            NotFound,
            EntryNotActive,
            IdempotencyKeyReused,
        ])),
    ]
}

/// `POST /v1/events/{event_id}/waitlist`, with the links a client follows next.
fn join_waitlist() -> Op {
    Op::post(
        "/v1/events/{event_id}/waitlist",
        "joinWaitlist",
        "waitlist",
        "Joins a section's waiting list, when it has fewer than `qty` tickets available \
         (user; the admin names `user_id`).",
    )
    .user()
    .path_param(EVENT_ID)
    .idempotency_key()
    .body::<JoinBody>(true)
    .answers::<EntryJson>(201, "The entry, `waiting`, with its `position`.")
    .link(
        "getWaitlistEntry",
        "getWaitlistEntry",
        "entry_id",
        "Read this entry.",
    )
    .link(
        "leaveWaitlist",
        "leaveWaitlist",
        "entry_id",
        "Leave the waiting list.",
    )
    .errors(&with_outcome(&[
        InvalidInput,
        Unauthorized,
        Forbidden,
        NotFound,
        AlreadyWaiting,
        TicketsAvailable,
        PayloadTooLarge,
        IdempotencyKeyReused,
        OverCapacity,
    ]))
}

/// Health, readiness, cluster, metrics and this document (tag `ops`).
fn ops_operations() -> Vec<Op> {
    let object = Schema::Object(ObjectBuilder::new().schema_type(Type::Object).build());
    vec![
        // A connection over the server's cap is answered 503 `overloaded` on any path.
        Op::get("/health", "health", "ops", "The process is alive.")
            .answers::<HealthJson>(200, "Alive.")
            .errors(&[Overloaded]),
        Op::get(
            "/ready",
            "ready",
            "ops",
            "Whether every shard has recovered and can write.",
        )
        .answers::<ReadyJson>(200, "Every shard is ready.")
        .answers_either::<ReadyJson, ErrorJson>(
            503,
            "A shard is recovering or failed (`reason` says why); or, in the error shape, \
                 `overloaded`: too many connections.",
        ),
        Op::get(
            "/v1/cluster",
            "getCluster",
            "ops",
            "What the answering node knows of its cluster: the nodes, and per shard its leader \
             (null during an election), term, the log position applied on this node \
             (comparable across nodes) and its replicas. Cluster mode only.",
        )
        .answers::<super::cluster::ClusterJson>(200, "The cluster as this node sees it.")
        .errors(&[NotFound, Overloaded]),
        Op::get(
            "/metrics",
            "metrics",
            "ops",
            "Metrics in Prometheus text format.",
        )
        .answers_as(200, "The metrics.", "text/plain", text())
        .errors(&[Overloaded]),
        Op::get("/openapi.json", "openapi", "ops", "This document.")
            .answers_as(200, "The OpenAPI document.", "application/json", object)
            .errors(&[Overloaded]),
    ]
}

/// The HTML pages (tag `pages`).
fn page_operations() -> Vec<Op> {
    vec![
        Op::get(
            "/",
            "listPage",
            "pages",
            "An HTML page listing the events, with links to their seat maps.",
        )
        .answers_as(200, "The page.", "text/html", text())
        .errors(&[Overloaded]),
        Op::get(
            "/events/{event_id}",
            "eventPage",
            "pages",
            "The event's seat-map page (HTML): seats and counts live from the stream; hold by \
             clicking or by \"best N together\", confirm or release. The page is the same \
             for any id (it reads the event from the API); for an event the server knows does \
             not exist it is answered 404.",
        )
        .path_param(EVENT_ID)
        .answers_as(200, "The page.", "text/html", text())
        .answers_as(
            404,
            "No such event: the same page, which says so.",
            "text/html",
            text(),
        )
        .errors(&[Overloaded]),
    ]
}

/// Adds the operations, their schemas, the error schema and the bearer scheme.
struct Operations;

impl Modify for Operations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token, or a user JWT (HS256, `sub` = user id, `exp` required).",
                    ))
                    .build(),
            ),
        );
        let mut errors = Vec::new();
        ErrorJson::schemas(&mut errors);
        errors.push((ErrorJson::name().into_owned(), ErrorJson::schema()));
        for (name, schema) in errors {
            components.schemas.entry(name).or_insert(schema);
        }
        for op in operations() {
            let (path, method, operation) = op.build(components);
            openapi
                .paths
                .add_path_operation(path, vec![method], operation);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use engine::{EntryId, Rejection, ShardLimit};
    use serde_json::Value;

    use super::*;
    use crate::api::error::ApiError;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    fn operations_of(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((format!("{method} {path}"), method.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn every_operation_has_its_own_id() {
        let doc = document();
        let ids: Vec<String> = operations_of(&doc)
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_string())
            .collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "repeated operationId in {ids:?}");
        for id in [
            "createEvent",
            "listEvents",
            "getEvent",
            "getSeats",
            "placeHold",
            "getHold",
            "releaseHold",
            "confirmHold",
            "purchase",
            "getBooking",
            "listBookings",
            "cancelBooking",
            "health",
            "ready",
            "metrics",
            "openapi",
            "extendHold",
            "joinWaitlist",
            "getWaitlistEntry",
            "leaveWaitlist",
            "streamEvent",
            "listPage",
            "eventPage",
        ] {
            assert!(unique.contains(&id.to_string()), "no operation {id}");
        }
    }

    #[test]
    fn every_response_is_described_and_every_link_resolves() {
        let doc = document();
        let operations = operations_of(&doc);
        let ids: HashSet<&str> = operations
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().unwrap())
            .collect();
        let mut links = 0;
        for (label, _, op) in &operations {
            for (status, response) in op["responses"].as_object().unwrap() {
                let description = response["description"].as_str().unwrap_or("");
                assert!(
                    !description.is_empty(),
                    "{label} {status} has no description"
                );
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap_or_default();
                    assert!(ids.contains(target), "{label} link {name} to {target}");
                    assert!(link.get("operation_id").is_none(), "{link}");
                    links += 1;
                }
            }
        }
        assert!(links >= 9, "{links} links");
    }

    #[test]
    fn every_operation_takes_and_every_response_names_the_request_id() {
        let doc = document();
        for (label, _, op) in operations_of(&doc) {
            let takes = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "X-Request-Id" && p["in"] == "header");
            assert!(takes, "{label} takes no X-Request-Id");
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["headers"]["X-Request-Id"].is_object(),
                    "{label} {status} does not name X-Request-Id"
                );
            }
        }
    }

    #[test]
    fn command_routes_answer_outcome_unknown_and_reads_do_not() {
        let doc = document();
        for (label, method, op) in operations_of(&doc) {
            let unknown = op["responses"]["503"]["description"]
                .as_str()
                .unwrap_or_default()
                .contains("`outcome_unknown`");
            let command = matches!(method.as_str(), "post" | "delete");
            assert_eq!(unknown, command, "{label}");
        }
    }

    #[test]
    fn every_time_is_a_date_time_and_every_status_an_enum() {
        let doc = document();
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                if field.ends_with("_at") {
                    assert_eq!(property["format"], "date-time", "{name}.{field}");
                }
                if field == "status" || field == "code" || field == "kind" {
                    let target = property["$ref"].as_str().unwrap_or_default();
                    let target = target.rsplit('/').next().unwrap();
                    let values = &doc["components"]["schemas"][target]["enum"];
                    assert!(values.is_array(), "{name}.{field} is no enum: {property}");
                }
            }
        }
    }

    /// Every rejection the engine can give (the match fails to compile when one is added).
    fn rejections() -> Vec<Rejection> {
        let all = vec![
            Rejection::invalid("items", "x"),
            Rejection::NotFound { what: "hold" },
            Rejection::EventExists,
            Rejection::SoldOut {
                section_id: "ga".into(),
                available: 0,
            },
            Rejection::SeatTaken { seat: "A-1".into() },
            Rejection::LimitExceeded {
                max_per_user: 1,
                current: 1,
            },
            Rejection::HoldExpired,
            Rejection::HoldNotActive { status: "released" },
            Rejection::BookingNotActive,
            Rejection::IdempotencyKeyReused,
            Rejection::OverCapacity(ShardLimit::Events),
            Rejection::NoAdjacentSeats {
                section_id: "seated".into(),
                available: 2,
            },
            Rejection::AlreadyWaiting {
                entry_id: EntryId::parse("w-0-1").unwrap(),
            },
            Rejection::TicketsAvailable { available: 2 },
            Rejection::ExtensionLimit { latest_ms: 0 },
            Rejection::EntryNotActive { status: "left" },
        ];
        for rejection in &all {
            match rejection {
                Rejection::InvalidInput { .. }
                | Rejection::NotFound { .. }
                | Rejection::EventExists
                | Rejection::SoldOut { .. }
                | Rejection::SeatTaken { .. }
                | Rejection::LimitExceeded { .. }
                | Rejection::HoldExpired
                | Rejection::HoldNotActive { .. }
                | Rejection::BookingNotActive
                | Rejection::IdempotencyKeyReused
                | Rejection::OverCapacity(_)
                | Rejection::NoAdjacentSeats { .. }
                | Rejection::AlreadyWaiting { .. }
                | Rejection::TicketsAvailable { .. }
                | Rejection::ExtensionLimit { .. }
                | Rejection::EntryNotActive { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_code_the_server_answers_is_in_the_enum_with_its_status() {
        let mut errors: Vec<ApiError> = rejections().into_iter().map(ApiError::from).collect();
        errors.extend([
            ApiError::invalid("f", "m"),
            ApiError::unauthorized("m"),
            ApiError::forbidden("m"),
            ApiError::not_found("hold"),
            ApiError::method_not_allowed(),
            ApiError::timeout(),
            ApiError::payload_too_large(),
            ApiError::overloaded(),
            ApiError::unavailable("m"),
            ApiError::outcome_unknown("m".into()),
        ]);
        let mut seen = HashSet::new();
        for error in errors {
            let code: ErrorCode = serde_json::from_value(Value::from(error.code()))
                .unwrap_or_else(|_| panic!("{} is not in ErrorCode", error.code()));
            assert_eq!(code.status(), error.status().as_u16(), "{}", error.code());
            seen.insert(code);
        }
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(seen.contains(&code), "{} is never answered", code.as_str());
        }
        let doc = document();
        let listed = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap();
        assert_eq!(listed.len(), ErrorCode::ALL.len());
    }
}
