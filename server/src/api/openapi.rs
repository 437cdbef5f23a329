//! The OpenAPI 3 document, generated from the handlers' annotations and the DTO types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "boxoffice", description = "Ticket reservation engine: events, holds, bookings."),
    paths(
        super::events::create, super::events::list, super::events::get, super::events::seats,
        super::holds::place, super::holds::get, super::holds::confirm, super::holds::release,
        super::bookings::purchase, super::bookings::get, super::bookings::cancel,
        super::bookings::list,
        super::ops::health, super::ops::ready, super::ops::metrics, super::ops::openapi,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
