//! The operators' read API: JSON over HTTP behind a bearer token.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loanwire_domain::process::ProcessKey;
use loanwire_domain::Outcome;
use loanwire_store::{InboxQuery, StoreError};
use loanwire_store::{InboxRecord, LoanView, ProcessView};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::operators::Operator;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/loans/{loan_apply_no}", get(loan))
        .route(
            "/api/v1/processes/{channel_id}/{process_type}/{process_no}",
            get(process),
        )
        .route("/api/v1/inbox", get(inbox))
        .route("/api/v1/inbox/{call_id}", get(inbox_call))
        .route("/api/v1/inbox/check", post(inbox_check))
}

/// A read API failure: an HTTP status and a JSON `{"error": …}`.
pub struct ApiError(pub StatusCode, pub String);

/// What every read API failure answers.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `ApiError` writes
pub struct ErrorBody {
    /// What is wrong, in a sentence.
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

/// A page size: `default` when not given, else between 1 and `max`.
pub(crate) fn page_limit(given: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = given.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is out of range: 1 to {max}"
        )));
    }
    Ok(limit)
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("{what} not found"))
}

#[utoipa::path(
    get, path = "/api/v1/loans/{loan_apply_no}", tag = "read",
    params(("loan_apply_no" = String, Path, description = "Alibaba's draw-down order number")),
    responses(
        (status = 200, description = "The loan note: status, identity, flags, history", body = LoanView),
        (status = 404, description = "No such loan note", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn loan(
    State(state): State<AppState>,
    _viewer: Operator,
    Path(no): Path<String>,
) -> Result<Response, ApiError> {
    let view = state
        .store
        .loan_view(&no)
        .await?
        .ok_or_else(|| not_found(format!("loan note `{no}`")))?;
    Ok(Json(view).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/processes/{channel_id}/{process_type}/{process_no}", tag = "read",
    params(
        ("channel_id" = String, Path),
        ("process_type" = String, Path, description = "CREDIT or LOAN"),
        ("process_no" = String, Path),
    ),
    responses(
        (status = 200, description = "The process: status and history", body = ProcessView),
        (status = 404, description = "No such process", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn process(
    State(state): State<AppState>,
    _viewer: Operator,
    Path((channel_id, process_type, process_no)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let key = ProcessKey {
        channel_id,
        process_type,
        process_no,
    };
    let view = state.store.process_view(&key).await?.ok_or_else(|| {
        not_found(format!(
            "process {}/{}/{}",
            key.channel_id, key.process_type, key.process_no
        ))
    })?;
    Ok(Json(view).into_response())
}

/// The most inbox records one page holds.
const MAX_INBOX_LIMIT: u32 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Only this app's calls.
    app: Option<String>,
    /// Only calls of this method.
    method: Option<String>,
    /// applied, duplicate, stale or refused.
    outcome: Option<String>,
    /// Only records older than this id (the previous page's `next_before`).
    before: Option<i64>,
    /// 1 to 500 (default 50).
    limit: Option<u32>,
}

/// A page of the inbox, newest first.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON the handler writes
pub struct InboxPage {
    records: Vec<InboxRecord>,
    /// The `before` of the next page; absent on the last.
    next_before: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/v1/inbox", tag = "read", params(InboxParams),
    responses(
        (status = 200, description = "Calls, newest first", body = InboxPage),
        (status = 400, description = "A bad filter or limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn inbox(
    State(state): State<AppState>,
    _viewer: Operator,
    query: Result<Query<InboxParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let outcome = match p.outcome.as_deref() {
        None | Some("") => None,
        Some(o) => Some(Outcome::parse(o).ok_or_else(|| {
            ApiError::bad_request(format!(
                "outcome `{o}` is not one of applied, duplicate, stale, refused"
            ))
        })?),
    };
    let limit = page_limit(p.limit, 50, MAX_INBOX_LIMIT)?;
    let query = InboxQuery {
        app_key: p.app,
        method: p.method,
        outcome,
        before_id: p.before,
        after_id: None,
        limit,
    };
    let records = state.store.inbox(&query).await?;
    let next = (records.len() as u32 == limit)
        .then(|| records.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({ "records": records, "next_before": next })).into_response())
}

#[utoipa::path(
    get, path = "/api/v1/inbox/{call_id}", tag = "read",
    params(("call_id" = String, Path, description = "The envelope's request_id")),
    responses(
        (status = 200, description = "One call with its parameters and the exact response sent", body = InboxRecord),
        (status = 404, description = "No such call", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn inbox_call(
    State(state): State<AppState>,
    _viewer: Operator,
    Path(call_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state
        .store
        .inbox_call(&call_id)
        .await?
        .ok_or_else(|| not_found(format!("call `{call_id}`")))?;
    Ok(Json(record).into_response())
}

/// Which of the given call `request_id`s the inbox does not hold (the bench verifies with it
/// that every acknowledged call was recorded).
#[utoipa::path(
    post, path = "/api/v1/inbox/check", tag = "read",
    request_body(content = Vec<String>, description = "Envelope request_ids, at most 10,000"),
    responses(
        (status = 200, description = "`{checked, missing}`: the ids the inbox does not hold", body = Object),
        (status = 400, description = "Too many ids, or not a JSON list", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn inbox_check(
    State(state): State<AppState>,
    _viewer: Operator,
    body: Result<Json<Vec<String>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(ids) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if ids.len() > 10_000 {
        return Err(ApiError::bad_request("at most 10000 ids per check"));
    }
    let missing = state.store.inbox_missing(&ids).await?;
    Ok(Json(json!({ "checked": ids.len(), "missing": missing })).into_response())
}
