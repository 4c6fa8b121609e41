//! The operators' admin API: partner apps and the admin audit (SPEC 5). Reading takes any
//! operator token; changing takes an `operator` one, and every change is audited in its commit.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loanwire_store::{AuditEntry, AuditQuery, Role, StoreError};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::admin::{page_limit, ApiError, ErrorBody};
use crate::apps::{self, describe, NewApp};
use crate::operators::Operator;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/apps", get(list_apps).post(create_app))
        .route("/api/v1/apps/{app_key}", get(app))
        .route("/api/v1/apps/{app_key}/disable", post(disable_app))
        .route("/api/v1/apps/{app_key}/enable", post(enable_app))
        .route("/api/v1/apps/{app_key}/rotate-secret", post(rotate_secret))
        .route("/api/v1/audit", get(audit))
}

/// A change the store refused as asked (an unknown app, a taken key) is the caller's to fix.
fn refused(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(m) if m.starts_with("no app") => ApiError(StatusCode::NOT_FOUND, m),
        StoreError::Invalid(m) if m.contains("already exists") => ApiError(StatusCode::CONFLICT, m),
        StoreError::Invalid(m) => ApiError::bad_request(m),
        other => other.into(),
    }
}

/// A partner app as the admin API shows it (its secret only in the answer that makes one).
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `apps::describe` writes
pub struct AppBody {
    app_key: String,
    name: String,
    enabled: bool,
    channels: Option<Vec<String>>,
    methods: Option<Vec<String>>,
    rate_limit: Option<u32>,
    /// Only when the app is created or its secret rotated.
    secret: Option<String>,
    /// After a rotation: until when the previous secret still verifies (GMT+8).
    previous_secret_valid_until: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/apps", tag = "admin",
    responses((status = 200, description = "Every app, without secrets", body = [AppBody])),
    security(("bearer" = []))
)]
async fn list_apps(State(state): State<AppState>, _viewer: Operator) -> Result<Response, ApiError> {
    let list = state.store.apps().await?;
    Ok(Json(json!(list
        .iter()
        .map(|a| describe(a, false))
        .collect::<Vec<_>>()))
    .into_response())
}

#[utoipa::path(
    get, path = "/api/v1/apps/{app_key}", tag = "admin",
    params(("app_key" = String, Path)),
    responses(
        (status = 200, description = "The app, without its secret", body = AppBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn app(
    State(state): State<AppState>,
    _viewer: Operator,
    Path(app_key): Path<String>,
) -> Result<Response, ApiError> {
    let app = apps::find(state.store.as_ref(), &app_key)
        .await
        .map_err(refused)?;
    Ok(Json(describe(&app, false)).into_response())
}

/// A new partner app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppBody {
    name: String,
    /// A chosen 8-digit key; generated when left out.
    app_key: Option<String>,
    /// Channels it may report processes for; any when left out.
    channels: Option<Vec<String>>,
    /// Methods it may call; every one when left out.
    methods: Option<Vec<String>>,
    /// Calls per second; the gateway's default when left out.
    rate_limit: Option<u32>,
}

#[utoipa::path(
    post, path = "/api/v1/apps", tag = "admin",
    request_body = NewAppBody,
    responses(
        (status = 201, description = "The app with its secret, shown this once", body = AppBody),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 409, description = "The chosen app key is taken", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_app(
    State(state): State<AppState>,
    op: Operator,
    body: Result<Json<NewAppBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let Json(b) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let spec = NewApp {
        name: b.name,
        app_key: b.app_key,
        channels: b.channels,
        methods: b.methods,
        rate_limit: b.rate_limit,
    };
    let app = apps::create(state.store.as_ref(), spec, &op.actor)
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(describe(&app, true))).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/apps/{app_key}/disable", tag = "admin",
    params(("app_key" = String, Path)),
    responses(
        (status = 200, description = "The app, refused from now on (code 29)", body = AppBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn disable_app(
    State(state): State<AppState>,
    op: Operator,
    Path(app_key): Path<String>,
) -> Result<Response, ApiError> {
    set_enabled(state, op, app_key, false).await
}

#[utoipa::path(
    post, path = "/api/v1/apps/{app_key}/enable", tag = "admin",
    params(("app_key" = String, Path)),
    responses(
        (status = 200, description = "The app, accepted again", body = AppBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn enable_app(
    State(state): State<AppState>,
    op: Operator,
    Path(app_key): Path<String>,
) -> Result<Response, ApiError> {
    set_enabled(state, op, app_key, true).await
}

async fn set_enabled(
    state: AppState,
    op: Operator,
    app_key: String,
    enabled: bool,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let app = apps::set_enabled(state.store.as_ref(), &app_key, enabled, &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(describe(&app, false)).into_response())
}

/// How long the old secret keeps working after a rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// Seconds (default 86400, at most 30 days).
    grace_secs: Option<u64>,
}

/// The longest grace an old secret gets.
const MAX_GRACE_SECS: u64 = 30 * 86_400;

/// The grace a rotation asks for: a day when there is no body, at most 30 days.
pub(crate) fn grace(body: Result<Json<RotateBody>, JsonRejection>) -> Result<Duration, ApiError> {
    let grace = match body {
        Ok(Json(b)) => b.grace_secs.unwrap_or(86_400),
        Err(JsonRejection::MissingJsonContentType(_)) => 86_400,
        Err(e) => return Err(ApiError::bad_request(e.body_text())),
    };
    if grace > MAX_GRACE_SECS {
        return Err(ApiError::bad_request(format!(
            "grace_secs {grace} is over {MAX_GRACE_SECS} (30 days)"
        )));
    }
    Ok(Duration::from_secs(grace))
}

#[utoipa::path(
    post, path = "/api/v1/apps/{app_key}/rotate-secret", tag = "admin",
    params(("app_key" = String, Path)),
    request_body(content = Option<RotateBody>, description = "Optional; `{}` or no body: one day of grace"),
    responses(
        (status = 200, description = "The app with its new secret, shown this once", body = AppBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    op: Operator,
    Path(app_key): Path<String>,
    body: Result<Json<RotateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let grace = grace(body)?;
    let app = apps::rotate_secret(state.store.as_ref(), &app_key, grace, &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(describe(&app, true)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only changes to this target (an app key, a token name).
    target: Option<String>,
    /// Only entries older than this id (the previous page's `next_before`).
    before: Option<i64>,
    /// 1 to 500 (default 50).
    limit: Option<u32>,
}

/// A page of the audit, newest first.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON the handler writes
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    /// The `before` of the next page; absent on the last.
    next_before: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/v1/audit", tag = "admin", params(AuditParams),
    responses(
        (status = 200, description = "Admin changes, newest first: who, from where, what, when", body = AuditPage),
        (status = 400, description = "A bad parameter", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn audit(
    State(state): State<AppState>,
    _viewer: Operator,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = page_limit(p.limit, 50, AuditQuery::MAX_LIMIT)?;
    let q = AuditQuery {
        before_id: p.before,
        target: p.target.filter(|t| !t.is_empty()),
        limit,
    };
    let entries = state.store.audit(&q).await?;
    let next = (entries.len() as u32 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({ "entries": entries, "next_before": next })).into_response())
}
