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
        title = "loanwire operators' API",
        description = "Loan notes, processes, the call inbox, the event feed, partner apps, webhook endpoints, the reconciliation report and the admin audit of a loanwire gateway. Every route takes `Authorization: Bearer <token>`: an operator token (`loanwire token create`) or the bootstrap LOANWIRE_ADMIN_TOKEN. A `viewer` token reads; changes need an `operator` token (403 otherwise)."
    ),
    paths(
        crate::admin::loan,
        crate::admin::process,
        crate::admin::inbox,
        crate::admin::inbox_call,
        crate::admin::inbox_check,
        crate::feed::events,
        crate::manage::list_apps,
        crate::manage::app,
        crate::manage::create_app,
        crate::manage::disable_app,
        crate::manage::enable_app,
        crate::manage::rotate_secret,
        crate::manage::audit,
        crate::delivery::api::list,
        crate::delivery::api::one,
        crate::delivery::api::create,
        crate::delivery::api::remove,
        crate::delivery::api::disable,
        crate::delivery::api::enable,
        crate::delivery::api::rotate_secret,
        crate::delivery::api::recover,
        crate::delivery::api::deliveries,
        crate::delivery::api::delivery,
        crate::delivery::api::retry,
        crate::reports::reconciliation,
        crate::reports::resolve,
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
