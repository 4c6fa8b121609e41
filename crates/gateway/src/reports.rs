//! The reconciliation report (SPEC 4.2) and the call counts behind it and the console's
//! overview: flagged loan notes, stuck processes, per-app figures over a window, resolutions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loanwire_store::reports::{self as counts, FlaggedLoan, MinuteCount, StuckProcess, REJECTED};
use loanwire_store::{Role, Store, StoreError};
use loanwire_top::time::{format_ms, now_ms};
use loanwire_top::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};

use crate::admin::{ApiError, ErrorBody};
use crate::operators::Operator;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reports/reconciliation", get(reconciliation))
        .route("/api/v1/loans/{loan_apply_no}/resolve", post(resolve))
}

/// Calls refused before authentication, counted in memory by minute, app and code until the
/// next roll-up writes them. Only apps that exist get a row of their own (everything else is
/// counted under `-`), so unauthenticated traffic cannot grow what is stored.
#[derive(Default)]
pub struct Rejections {
    counts: Mutex<BTreeMap<(i64, String, String), i64>>,
}

/// Where the rejections of callers that name no existing app are counted.
pub const UNKNOWN_APP: &str = "-";

impl Rejections {
    pub fn count(&self, app_key: &str, code: u32) {
        let minute = now_ms() / 60_000 * 60_000;
        let mut counts = self.counts.lock().expect("rejection counts");
        *counts
            .entry((minute, app_key.to_string(), code.to_string()))
            .or_default() += 1;
    }

    fn take(&self) -> BTreeMap<(i64, String, String), i64> {
        std::mem::take(&mut *self.counts.lock().expect("rejection counts"))
    }

    /// Puts back counts a failed write did not store.
    fn restore(&self, back: BTreeMap<(i64, String, String), i64>) {
        let mut counts = self.counts.lock().expect("rejection counts");
        for (k, n) in back {
            *counts.entry(k).or_default() += n;
        }
    }
}

/// How often the inbox's tail is counted.
const ROLL_EVERY: Duration = Duration::from_secs(2);

/// Counts the inbox into per-minute figures and writes the rejections counted in memory, until
/// the gateway stops; prunes old counts and expired sessions now and then.
pub async fn roll_up_forever(
    store: Arc<dyn Store>,
    rejections: Arc<Rejections>,
    keep_days: u32,
    mut stopping: watch::Receiver<bool>,
) {
    let mut passes: u64 = 0;
    loop {
        let taken = rejections.take();
        let rejected = counts::rejections(&taken);
        match store.roll_up(rejected, now_ms()).await {
            // A full batch: more is waiting; count it at once.
            Ok(n) if n as i64 >= counts::ROLL_BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                rejections.restore(taken);
                tracing::warn!(error = %e, "call counts not rolled up; trying again");
            }
        }
        if passes % 1800 == 0 {
            let keep_from = now_ms() - i64::from(keep_days) * 86_400_000;
            if let Err(e) = store.prune_reports(keep_from, now_ms()).await {
                tracing::warn!(error = %e, "old call counts not pruned");
            }
        }
        passes += 1;
        let stop = tokio::select! {
            _ = tokio::time::sleep(ROLL_EVERY) => false,
            _ = stopping.wait_for(|s| *s) => true,
        };
        if stop {
            // Writes what was counted since the last pass before the gateway stops.
            let rejected = counts::rejections(&rejections.take());
            let _ = store.roll_up(rejected, now_ms()).await;
            return;
        }
    }
}

/// A code and how many calls got it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CodeCount {
    pub code: String,
    pub n: i64,
}

/// One app's calls over the report's window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AppFigures {
    pub app_key: String,
    /// Authenticated calls (recorded in the inbox).
    pub calls: i64,
    pub applied: i64,
    pub refused: i64,
    pub stale: i64,
    pub duplicate: i64,
    pub refused_share: f64,
    pub stale_share: f64,
    pub duplicate_share: f64,
    /// Calls refused before authentication (bad signature, stale timestamp, disabled app …).
    pub rejected: i64,
    /// Calls whose signature did not verify (code 25), counted per `app_key` before
    /// authentication.
    pub signature_failures: i64,
    /// The error codes it got most, most first.
    pub top_error_codes: Vec<CodeCount>,
}

fn share(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
    }
}

/// One app's calls by outcome and by code, and its signature failures, tallied in one pass.
#[derive(Default)]
struct Tally<'a> {
    outcomes: HashMap<&'a str, i64>,
    codes: HashMap<&'a str, i64>,
    signature_failures: i64,
}

/// Per-app figures of the counts, busiest app first.
pub fn app_figures(counts: &[MinuteCount]) -> Vec<AppFigures> {
    let signature = ErrorCode::InvalidSignature.code().to_string();
    let mut by_app: BTreeMap<&str, Tally<'_>> = BTreeMap::new();
    for c in counts {
        let t = by_app.entry(&c.app_key).or_default();
        *t.outcomes.entry(&c.outcome).or_default() += c.n;
        if !c.code.is_empty() {
            *t.codes.entry(&c.code).or_default() += c.n;
        }
        if c.outcome == REJECTED && c.code == signature {
            t.signature_failures += c.n;
        }
    }
    let mut figures: Vec<AppFigures> = by_app
        .into_iter()
        .map(|(app, t)| {
            let get = |o: &str| t.outcomes.get(o).copied().unwrap_or(0);
            let calls = get("applied") + get("refused") + get("stale") + get("duplicate");
            AppFigures {
                app_key: app.to_string(),
                calls,
                applied: get("applied"),
                refused: get("refused"),
                stale: get("stale"),
                duplicate: get("duplicate"),
                refused_share: share(get("refused"), calls),
                stale_share: share(get("stale"), calls),
                duplicate_share: share(get("duplicate"), calls),
                rejected: get(REJECTED),
                signature_failures: t.signature_failures,
                top_error_codes: top_codes(&t.codes, 5),
            }
        })
        .collect();
    figures.sort_by_key(|f| std::cmp::Reverse(f.calls + f.rejected));
    figures
}

/// The `limit` most frequent codes, most first (ties by code).
pub fn top_codes(codes: &HashMap<&str, i64>, limit: usize) -> Vec<CodeCount> {
    let mut list: Vec<CodeCount> = codes
        .iter()
        .map(|(code, n)| CodeCount {
            code: code.to_string(),
            n: *n,
        })
        .collect();
    list.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.code.cmp(&b.code)));
    list.truncate(limit);
    list
}

/// The report's time window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Window {
    pub from: String,
    pub to: String,
    pub hours: u32,
}

/// The reconciliation report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Report {
    pub generated_at: String,
    pub window: Window,
    pub stuck_after_hours: u64,
    /// Loan notes flagged for reconciliation, most recently changed first.
    pub flagged_loans: Vec<FlaggedLoan>,
    /// The `flagged_before` of the next page of flagged loan notes; absent on the last.
    pub next_flagged_before: Option<String>,
    /// Processes `IN_PROCESSING` for longer than `stuck_after_hours`, longest first.
    pub stuck_processes: Vec<StuckProcess>,
    pub apps: Vec<AppFigures>,
}

/// What a report covers and how much of each list it holds.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub window_hours: u32,
    pub limit: u32,
    /// `updated_ms:loan_apply_no` of the last flagged loan note of the previous page.
    pub flagged_before: Option<String>,
}

/// The most rows of each list a report holds.
pub const MAX_REPORT_LIMIT: u32 = 1000;

fn cursor(text: &str) -> Result<(i64, String), StoreError> {
    text.split_once(':')
        .and_then(|(ms, no)| Some((ms.parse().ok()?, no.to_string())))
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "flagged_before `{text}` is not a cursor from a previous page"
            ))
        })
}

pub async fn build(
    store: &dyn Store,
    stuck_after_hours: u64,
    q: &ReportQuery,
) -> Result<Report, StoreError> {
    let now = now_ms();
    let from = now - i64::from(q.window_hours) * 3_600_000;
    let before = q.flagged_before.as_deref().map(cursor).transpose()?;
    let flagged = store.flagged_loans(before, q.limit).await?;
    let next = (flagged.len() as u32 == q.limit)
        .then(|| {
            flagged
                .last()
                .map(|l| format!("{}:{}", l.updated_ms, l.loan_apply_no))
        })
        .flatten();
    let stuck_before = now - stuck_after_hours as i64 * 3_600_000;
    let stuck = store.stuck_processes(stuck_before, q.limit).await?;
    let minutes = store.minutes(from, now + 60_000).await?;
    Ok(Report {
        generated_at: format_ms(now),
        window: Window {
            from: format_ms(from),
            to: format_ms(now),
            hours: q.window_hours,
        },
        stuck_after_hours,
        flagged_loans: flagged,
        next_flagged_before: next,
        stuck_processes: stuck,
        apps: app_figures(&minutes),
    })
}

/// The CSV's columns: each row fills those of its `section`.
const CSV_COLUMNS: [&str; 14] = [
    "section",
    "key",
    "app_key",
    "status",
    "flags",
    "expected_status",
    "reported_status",
    "since",
    "calls",
    "refused_share",
    "stale_share",
    "duplicate_share",
    "signature_failures",
    "top_error_codes",
];

/// A CSV row with `cells` in their named columns and the others empty.
fn csv_row(cells: &[(&str, &str)]) -> Vec<String> {
    CSV_COLUMNS
        .iter()
        .map(|c| {
            cells
                .iter()
                .find(|(name, _)| name == c)
                .map_or_else(String::new, |(_, v)| v.to_string())
        })
        .collect()
}

/// The report as CSV: one row per flagged loan note, stuck process and app, told apart by
/// `section`.
pub fn to_csv(r: &Report) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_COLUMNS)?;
    for l in &r.flagged_loans {
        let kinds: Vec<&str> = l.flags.iter().map(|f| f.kind.as_str()).collect();
        let first = l.flags.first();
        w.write_record(csv_row(&[
            ("section", "flagged_loan"),
            ("key", &l.loan_apply_no),
            ("app_key", &l.app_key),
            ("status", &l.status),
            ("flags", &kinds.join(" ")),
            ("expected_status", first.map_or("", |f| &f.expected_status)),
            ("reported_status", first.map_or("", |f| &f.reported_status)),
            ("since", &l.since),
        ]))?;
    }
    for p in &r.stuck_processes {
        let key = format!("{}/{}/{}", p.channel_id, p.process_type, p.process_no);
        w.write_record(csv_row(&[
            ("section", "stuck_process"),
            ("key", &key),
            ("app_key", &p.app_key),
            ("status", &p.status),
            ("since", &p.since),
        ]))?;
    }
    for a in &r.apps {
        let codes: Vec<String> = a
            .top_error_codes
            .iter()
            .map(|c| format!("{}:{}", c.code, c.n))
            .collect();
        w.write_record(csv_row(&[
            ("section", "app"),
            ("key", &a.app_key),
            ("app_key", &a.app_key),
            ("calls", &a.calls.to_string()),
            ("refused_share", &a.refused_share.to_string()),
            ("stale_share", &a.stale_share.to_string()),
            ("duplicate_share", &a.duplicate_share.to_string()),
            ("signature_failures", &a.signature_failures.to_string()),
            ("top_error_codes", &codes.join(" ")),
        ]))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 text"))
}

/// The report as a CSV download.
pub fn csv_response(r: &Report) -> Result<Response, ApiError> {
    let text = to_csv(r).map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"reconciliation.csv\"",
            ),
        ],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// json (default) or csv.
    format: Option<String>,
    /// Hours the per-app figures cover, 1 to 720 (default 24).
    window_hours: Option<u32>,
    /// Rows of each list, 1 to 1000 (default 1000).
    limit: Option<u32>,
    /// The previous page's `next_flagged_before`.
    flagged_before: Option<String>,
}

/// The report's query from its parameters.
pub fn report_query(
    window_hours: Option<u32>,
    limit: Option<u32>,
    flagged_before: Option<String>,
) -> Result<ReportQuery, ApiError> {
    let window_hours = window_hours.unwrap_or(24);
    if !(1..=720).contains(&window_hours) {
        return Err(ApiError::bad_request(format!(
            "window_hours {window_hours} is out of range: 1 to 720"
        )));
    }
    let limit = crate::admin::page_limit(limit, MAX_REPORT_LIMIT, MAX_REPORT_LIMIT)?;
    Ok(ReportQuery {
        window_hours,
        limit,
        flagged_before: flagged_before.filter(|c| !c.is_empty()),
    })
}

/// A store refusal of a report or resolution: the caller's to fix.
pub fn refused(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(m) if m.starts_with("no loan note") => {
            ApiError(StatusCode::NOT_FOUND, m)
        }
        StoreError::Invalid(m) if m.ends_with("not flagged for reconciliation") => {
            ApiError(StatusCode::CONFLICT, m)
        }
        StoreError::Invalid(m) => ApiError::bad_request(m),
        other => other.into(),
    }
}

#[utoipa::path(
    get, path = "/api/v1/reports/reconciliation", tag = "reports", params(ReportParams),
    responses(
        (status = 200, description = "Flagged loan notes, stuck processes and per-app figures (JSON, or CSV with `format=csv`)", body = Report),
        (status = 400, description = "A bad parameter", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn reconciliation(
    State(state): State<AppState>,
    _viewer: Operator,
    query: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let csv = match p.format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "format `{f}` is not json or csv"
            )))
        }
    };
    let q = report_query(p.window_hours, p.limit, p.flagged_before)?;
    let report = build(
        state.store.as_ref(),
        state.config.reports.stuck_after_hours,
        &q,
    )
    .await
    .map_err(refused)?;
    if !csv {
        return Ok(Json(report).into_response());
    }
    csv_response(&report)
}

/// A resolution's note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// What was found and done, 1 to 2000 characters.
    note: String,
}

/// Checks a resolution's note: what the operator found and did, in words.
pub fn resolution_note(note: &str) -> Result<&str, ApiError> {
    let note = note.trim();
    if note.is_empty() || note.chars().count() > 2000 {
        return Err(ApiError::bad_request(
            "a resolution needs a note of 1 to 2000 characters",
        ));
    }
    Ok(note)
}

#[utoipa::path(
    post, path = "/api/v1/loans/{loan_apply_no}/resolve", tag = "reports",
    params(("loan_apply_no" = String, Path)),
    request_body = ResolveBody,
    responses(
        (status = 200, description = "`{loan_apply_no, resolved}`: the flags resolved; the resolution is in the loan note's history and the audit", body = Object),
        (status = 400, description = "No note, or too long", body = ErrorBody),
        (status = 403, description = "A viewer token", body = ErrorBody),
        (status = 404, description = "No such loan note", body = ErrorBody),
        (status = 409, description = "The loan note is not flagged", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn resolve(
    State(state): State<AppState>,
    op: Operator,
    Path(no): Path<String>,
    body: Result<Json<ResolveBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    op.require(Role::Operator)?;
    let Json(b) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let note = resolution_note(&b.note)?;
    let n = state
        .store
        .resolve_loan(&no, note, &op.actor)
        .await
        .map_err(refused)?;
    Ok(Json(json!({ "loan_apply_no": no, "resolved": n })).into_response())
}
