//! The read API described as OpenAPI 3.1, generated from the handlers' annotations and served at
//! `/api/v1/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "loanwire read API",
        description = "Loan notes, processes, the call inbox and the event feed of a loanwire gateway. Every route takes `Authorization: Bearer <admin token>`."
    ),
    paths(
        crate::admin::loan,
        crate::admin::process,
        crate::admin::inbox,
        crate::admin::inbox_call,
        crate::admin::inbox_check,
        crate::feed::events,
    ),
    modifiers(&Bearer)
)]
pub struct ReadApi;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

pub fn routes() -> Router<AppState> {
    // Built once: the document does not change while the gateway runs.
    let doc = ReadApi::openapi();
    Router::new().route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc) }
        }),
    )
}
