//! The event feed (SPEC 3.2): `GET /api/v1/events?after=&limit=&types=&wait=`, a cursor over
//! `seq` that never skips, with long-polling — and the retention that prunes it.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use loanwire_store::{Event, EventQuery, Store};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::admin::{page_limit, ApiError};
use crate::apis::{idle_loan_callback::PROCESS_CHANGED, xfd_loan_change_notify::LOAN_CHANGED};
use crate::operators::Operator;
use crate::state::AppState;

/// The event types there are.
pub const EVENT_TYPES: [&str; 2] = [LOAN_CHANGED, PROCESS_CHANGED];

/// The longest a request may wait for an event.
pub const MAX_WAIT_SECS: u64 = 30;

/// How soon to look again when events are committed but held back by an older transaction
/// still running (PostgreSQL): no signal comes when that one ends without events of its own.
const PENDING_PAUSE: Duration = Duration::from_millis(20);

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/events", get(events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Events with a `seq` greater than this (default 0).
    after: Option<i64>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Comma-separated: loan.changed, process.changed (default all).
    types: Option<String>,
    /// Seconds to hold an empty answer until an event commits, at most 30 (default 0).
    wait: Option<u64>,
}

/// A page of the feed.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON the handler writes
pub struct EventPage {
    events: Vec<Event>,
    /// The cursor to ask with next: the last event's `seq`, or `after` when there is none.
    next_after: i64,
}

fn parse(p: FeedParams) -> Result<(EventQuery, Duration), ApiError> {
    let after = p.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::bad_request(format!("after {after} is negative")));
    }
    let limit = page_limit(p.limit, 100, EventQuery::MAX_LIMIT)?;
    let types = match p.types.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(list) => {
            let types: Vec<String> = list.split(',').map(|t| t.trim().to_string()).collect();
            if let Some(unknown) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
                return Err(ApiError::bad_request(format!(
                    "unknown event type `{}`; the types are {}",
                    loanwire_top::text::echo(unknown),
                    EVENT_TYPES.join(", ")
                )));
            }
            Some(types)
        }
    };
    let wait = Duration::from_secs(p.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    Ok((
        EventQuery {
            after,
            limit,
            types,
        },
        wait,
    ))
}

#[utoipa::path(
    get, path = "/api/v1/events", tag = "events", params(FeedParams),
    responses(
        (status = 200, description = "Events in seq order", body = EventPage),
        (status = 400, description = "A bad parameter", body = crate::admin::ErrorBody),
        (status = 410, description = "The cursor is older than the retention", body = crate::admin::ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn events(
    State(state): State<AppState>,
    _viewer: Operator,
    query: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (q, wait) = parse(p)?;
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before the first look, so that a commit between a look and the wait is not
    // slept through.
    let mut signal = state.store.event_signal();
    let mut stopping = state.stopping.subscribe();
    loop {
        let page = state.store.events(&q).await?;
        if q.after < page.pruned_through {
            return Err(ApiError(
                StatusCode::GONE,
                format!(
                    "cursor {} is older than the retention ({} days): events up to seq {} were pruned; start again from after={}",
                    q.after, state.config.events.retention_days, page.pruned_through, page.pruned_through
                ),
            ));
        }
        let now = tokio::time::Instant::now();
        if !page.events.is_empty() || now >= deadline || *stopping.borrow() {
            let next_after = page.events.last().map_or(q.after, |e| e.seq);
            return Ok(
                Json(json!({ "events": page.events, "next_after": next_after })).into_response(),
            );
        }
        let nap = if page.pending {
            PENDING_PAUSE.min(deadline - now)
        } else {
            deadline - now
        };
        tokio::select! {
            changed = signal.changed() => {
                if changed.is_err() {
                    // The store is gone (shutting down): answer what there is.
                    tokio::time::sleep_until(deadline).await;
                }
            }
            () = tokio::time::sleep(nap) => {}
            // The gateway is stopping: answer what there is rather than hold the shutdown.
            _ = stopping.changed() => {}
        }
    }
}

/// Prunes events older than the retention now and then every hour, for as long as the store
/// lives.
pub async fn prune_forever(store: std::sync::Arc<dyn Store>, retention_days: u32) {
    let retention_ms = i64::from(retention_days) * 86_400_000;
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let before = loanwire_top::time::now_ms() - retention_ms;
        match store.prune_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                pruned = n,
                retention_days,
                "events past the retention pruned"
            ),
            Err(e) => tracing::warn!(error = %e, "pruning events failed; trying again in an hour"),
        }
    }
}
