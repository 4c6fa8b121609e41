//! The reconciliation report (SPEC 4.2) as a page, with "resolve" on each flagged loan note,
//! and as CSV for the signed-in operator.

use axum::extract::{Query, State};
use loanwire_store::Role;
use maud::html;
use serde::Deserialize;

use super::{enc, layout, may_change, Failure, Page, Signed};
use crate::reports::{build, csv_response, report_query};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    window_hours: Option<u32>,
    flagged_before: Option<String>,
    notice: Option<String>,
}

pub async fn page(State(state): State<AppState>, s: Signed, Query(q): Query<ReportQuery>) -> Page {
    let query = report_query(q.window_hours, Some(100), q.flagged_before)?;
    let stuck_after = state.config.reports.stuck_after_hours;
    let r = build(state.store.as_ref(), stuck_after, &query)
        .await
        .map_err(crate::reports::refused)?;
    let operator = may_change(&s) && s.op.role >= Role::Operator;
    let content = html! {
        p.hint { "Generated " (r.generated_at) " (GMT+8). "
            a #report-csv href={ "/console/reconciliation.csv?window_hours=" (r.window.hours) } { "Download CSV" } " · JSON: "
            code { "GET /api/v1/reports/reconciliation" } }
        h2 { "Loan notes flagged for reconciliation" }
        @if r.flagged_loans.is_empty() { p.empty #no-flags { "Nothing to reconcile." } } @else {
            table #flagged {
                thead { tr { th { "loan note" } th { "app" } th { "platform status" } th { "flags: expected → reported" } th { "since" } @if operator { th { "resolve" } } } }
                tbody { @for l in &r.flagged_loans { tr data-loan=(l.loan_apply_no) {
                    td { a href={ "/console/loans/" (enc(&l.loan_apply_no)) } { (l.loan_apply_no) } }
                    td { (l.app_key) }
                    td { (l.status) }
                    td { @for f in &l.flags { span.bad { (f.kind.as_str()) } " " (f.expected_status) " → " (f.reported_status) " (then " (f.after_status) ")" br; } }
                    td { (l.since) }
                    @if operator { td {
                        form.inline method="post" action={ "/console/loans/" (enc(&l.loan_apply_no)) "/resolve" } {
                            (s.csrf_field())
                            input type="text" name="note" required maxlength="2000" placeholder="note";
                            button type="submit" { "Resolve" }
                        }
                    } }
                } } }
            }
            @if let Some(next) = &r.next_flagged_before {
                p { a href={ "/console/reconciliation?window_hours=" (r.window.hours) "&flagged_before=" (enc(next)) } { "More flagged loan notes →" } }
            }
        }
        h2 { "Processes IN_PROCESSING for over " (stuck_after) " hours" }
        @if r.stuck_processes.is_empty() { p.empty { "None." } } @else {
            table #stuck {
                thead { tr { th { "process" } th { "app" } th { "since (last change)" } } }
                tbody { @for p in &r.stuck_processes { tr {
                    td { a href={ "/console/processes/" (enc(&p.channel_id)) "/" (enc(&p.process_type)) "/" (enc(&p.process_no)) } { (p.channel_id) "/" (p.process_type) "/" (p.process_no) } }
                    td { (p.app_key) } td { (p.since) }
                } } }
            }
        }
        h2 { "Apps over the last " (r.window.hours) " hours" }
        p.tabs { @for h in [1u32, 24, 168] { a href={ "/console/reconciliation?window_hours=" (h) } class=[(r.window.hours == h).then_some("active")] { (h) " h" } } }
        @if r.apps.is_empty() { p.empty { "No calls." } } @else {
            table #report-apps {
                thead { tr { th { "app" } th.num { "calls" } th.num { "refused" } th.num { "stale" } th.num { "duplicate" } th.num { "signature failures" } th { "most frequent codes" } } }
                tbody { @for a in &r.apps { tr {
                    td { (a.app_key) } td.num { (a.calls) }
                    td.num { (format!("{:.1} %", a.refused_share * 100.0)) }
                    td.num { (format!("{:.1} %", a.stale_share * 100.0)) }
                    td.num { (format!("{:.1} %", a.duplicate_share * 100.0)) }
                    td.num { (a.signature_failures) }
                    td { @for c in &a.top_error_codes { code { (c.code) } " ×" (c.n) " " } }
                } } }
            }
        }
    };
    layout(
        &s,
        "reconciliation",
        "Reconciliation",
        q.notice.as_deref(),
        content,
    )
}

pub async fn csv(
    State(state): State<AppState>,
    _s: Signed,
    Query(q): Query<ReportQuery>,
) -> Result<axum::response::Response, Failure> {
    let query = report_query(q.window_hours, None, q.flagged_before)?;
    let stuck_after = state.config.reports.stuck_after_hours;
    let r = build(state.store.as_ref(), stuck_after, &query)
        .await
        .map_err(crate::reports::refused)?;
    Ok(csv_response(&r)?)
}
