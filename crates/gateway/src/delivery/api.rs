//! `/api/v1/endpoints…`: webhook endpoints and their delivery log over HTTP. Reading takes any
//! operator token; changing, retrying and recovering take an `operator` one.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loanwire_store::delivery::{Attempt, Delivery, DeliveryStatus};
use loanwire_store::{Role, StoreError};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::endpoints::{self, describe, NewEndpoint};
use crate::admin::{page_limit, ApiError, ErrorBody};
use crate::manage::{grace, RotateBody};
use crate::operators::Operator;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/endpoints", get(list).post(create))
        .route("/api/v1/endpoints/{id}", get(one).delete(remove))
        .route("/api/v1/endpoints/{id}/disable", post(disable))
        .route("/api/v1/endpoints/{id}/enable", post(enable))
        .route("/api/v1/endpoints/{id}/rotate-secret", post(rotate_secret))
        .route("/api/v1/endpoints/{id}/recover", post(recover))
        .route("/api/v1/endpoints/{id}/deliveries", get(deliveries))
        .route(
            "/api/v1/endpoints/{id}/deliveries/{event_id}",
            get(delivery),
        )
        .route(
            "/api/v1/endpoints/{id}/deliveries/{event_id}/retry",
            post(retry),
        )
}

fn refused(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(m) if m.starts_with("no endpoint") || m.starts_with("no delivery") => {
            ApiError(StatusCode::NOT_FOUND, m)
        }
        StoreError::Invalid(m) => ApiError::bad_request(m),
        other => other.into(),
    }
}

/// A webhook endpoint (its secret only in the answers that make one).
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `endpoints::describe` writes
pub struct EndpointBody {
    id: String,
    url: String,
    types: Option<Vec<String>>,
    description: String,
    enabled: bool,
    disabled_reason: Option<String>,
    failures_in_a_row: i64,
    cursor_seq: i64,
    /// `whsec_…`: only when the endpoint is made or its secret rotated.
    secret: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/endpoints", tag = "webhooks",
    responses((status = 200, description = "Every endpoint, without secrets", body = [EndpointBody])),
    security(("bearer" = []))
)]
async fn list(State(state): State<AppState>, _viewer: Operator) -> Result<Response, ApiError> {
    let list = state.store.endpoints().await?;
    let list: Vec<_> = list.iter().map(|e| describe(e, false)).collect();
    Ok(Json(json!(list)).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The endpoint and its backlog", body = EndpointBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn one(
    State(state): State<AppState>,
    _viewer: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let e = endpoints::find(state.store.as_ref(), &id)
        .await
        .map_err(refused)?;
    let backlog = state.store.backlog(&id).await?;
    let mut v = describe(&e, false);
    v["backlog"] = json!(backlog);
    Ok(Json(v).into_response())
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpointBody {
    url: String,
    /// `loan.changed`, `process.changed`; every type when left out.
    types: Option<Vec<String>>,
    description: Option<String>,
}

#[utoipa::path(
    post, path = "/api/v1/endpoints", tag = "webhooks",
    request_body = NewEndpointBody,
    responses(
        (status = 201, description = "The endpoint with its signing secret, shown this once", body = EndpointBody),
        (status = 400, description = "A bad URL (or one the SSRF guard refuses) or type", body = ErrorBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    op: Operator,
    body: Result<Json<NewEndpointBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let Json(b) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let spec = NewEndpoint {
        url: b.url,
        types: b.types,
        description: b.description.unwrap_or_default(),
    };
    let e = endpoints::add(state.store.as_ref(), &state.guard, spec, &op.actor)
        .await
        .map_err(refused)?;
    Ok((StatusCode::CREATED, Json(describe(&e, true))).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Removed, with its deliveries", body = Object),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn remove(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    state
        .store
        .remove_endpoint(&id, &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "removed": id })).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/endpoints/{id}/disable", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Disabled: its events wait", body = EndpointBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn disable(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_enabled(state, op, id, false).await
}

#[utoipa::path(
    post, path = "/api/v1/endpoints/{id}/enable", tag = "webhooks",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "Enabled: what waited is delivered, failed deliveries included", body = EndpointBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn enable(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_enabled(state, op, id, true).await
}

async fn set_enabled(
    state: AppState,
    op: Operator,
    id: String,
    enabled: bool,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let e = endpoints::set_enabled(state.store.as_ref(), &id, enabled, &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(describe(&e, false)).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/endpoints/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path)),
    request_body(content = Option<RotateBody>, description = "Optional; no body: one day of grace"),
    responses(
        (status = 200, description = "The new secret, shown this once; both sign until the grace ends", body = EndpointBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    body: Result<Json<RotateBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let grace = grace(body)?;
    let e = endpoints::rotate_secret(state.store.as_ref(), &id, grace, &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(describe(&e, true)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecoverParams {
    /// RFC 3339: failed deliveries made since then are sent again.
    since: String,
}

#[utoipa::path(
    post, path = "/api/v1/endpoints/{id}/recover", tag = "webhooks",
    params(("id" = String, Path), RecoverParams),
    responses(
        (status = 200, description = "`{requeued}`: failed deliveries sent again", body = Object),
        (status = 400, description = "A bad time", body = ErrorBody),
        (status = 404, description = "No such endpoint", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn recover(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    query: Result<Query<RecoverParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = parse_time(&p.since)?;
    let n = state
        .store
        .requeue(&id, None, Some(since), &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "requeued": n })).into_response())
}

/// An RFC 3339 time (or epoch milliseconds) as epoch milliseconds.
pub fn parse_time(text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "`{text}` is not a time: RFC 3339 (2026-12-03T09:00:00Z) or epoch milliseconds"
            ))
        })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// pending, delivered or failed.
    status: Option<String>,
    /// Only deliveries of events older than this `seq` (the previous page's `next_before`).
    before: Option<i64>,
    /// 1 to 500 (default 50).
    limit: Option<u32>,
}

/// A page of deliveries, newest first.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON the handler writes
pub struct DeliveryPage {
    deliveries: Vec<Delivery>,
    next_before: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/v1/endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveriesParams),
    responses(
        (status = 200, description = "Deliveries, newest first", body = DeliveryPage),
        (status = 400, description = "A bad status or limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn deliveries(
    State(state): State<AppState>,
    _viewer: Operator,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = match p.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status `{s}` is not one of pending, delivered, failed"
            ))
        })?),
    };
    let limit = page_limit(p.limit, 50, 500)?;
    endpoints::find(state.store.as_ref(), &id)
        .await
        .map_err(refused)?;
    let list = state.store.deliveries(&id, status, p.before, limit).await?;
    let next = (list.len() as u32 == limit)
        .then(|| list.last().map(|d| d.seq))
        .flatten();
    Ok(Json(json!({ "deliveries": list, "next_before": next })).into_response())
}

/// One delivery with every attempt.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON the handler writes
pub struct DeliveryDetail {
    delivery: Delivery,
    attempts: Vec<Attempt>,
}

#[utoipa::path(
    get, path = "/api/v1/endpoints/{id}/deliveries/{event_id}", tag = "webhooks",
    params(("id" = String, Path), ("event_id" = String, Path)),
    responses(
        (status = 200, description = "The delivery and its attempts: time, status, latency, the first 1 KiB of the answer or the error", body = DeliveryDetail),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn delivery(
    State(state): State<AppState>,
    _viewer: Operator,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (delivery, attempts) = state.store.delivery(&id, &event_id).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no delivery of `{event_id}` to `{id}`"),
        )
    })?;
    Ok(Json(json!({ "delivery": delivery, "attempts": attempts })).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/endpoints/{id}/deliveries/{event_id}/retry", tag = "webhooks",
    params(("id" = String, Path), ("event_id" = String, Path)),
    responses(
        (status = 200, description = "Sent again at once, whatever its status", body = Object),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn retry(
    State(state): State<AppState>,
    op: Operator,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let n = state
        .store
        .requeue(&id, Some(&event_id), None, &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "requeued": n })).into_response())
}
