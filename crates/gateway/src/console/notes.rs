//! A loan note or a process: its status, identity, owning app, reconciliation flags, and its
//! history as a timeline whose entries link to their calls; a flagged loan note's "resolve".

use axum::extract::{Path, Query, State};
use loanwire_domain::loan::Flag;
use loanwire_domain::process::ProcessKey;
use loanwire_store::{HistoryEntry, Role, TimelineEntry};
use maud::{html, Markup};
use serde::Deserialize;

use super::{enc, layout, may_change, not_found, see_other, Page, Posted, Signed};
use crate::reports::resolution_note;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

fn call_entry(h: &HistoryEntry) -> Markup {
    let status = |k: &str| h.detail.get(k).and_then(|v| v.as_str()).map(String::from);
    html! {
        li class={ "call " (h.outcome) } {
            span.when { (h.received_at) }
            span class={ "outcome " (h.outcome) } { (h.outcome) }
            @if let (Some(b), Some(a)) = (status("before_status"), status("after_status")) { span.change { (b) " → " (a) } }
            @else if let Some(st) = status("status") { span.change { "→ " (st) } }
            @if let Some(c) = h.error_code { span.code { "code " (c) } }
            @if let Some(b) = &h.biz_code { span.code { (b) } }
            " " a.mono href={ "/console/calls/" (enc(&h.call_id)) } { "call " (h.call_id) }
            " by " (h.app_key)
        }
    }
}

fn flags_table(flags: &[Flag]) -> Markup {
    html! {
        table #flags {
            thead { tr { th { "flag" } th { "expected (platform)" } th { "reported before" } th { "reported after" } th { "change time" } th { "request_id" } } }
            tbody { @for f in flags { tr {
                td { span.bad { (f.kind.as_str()) } } td { (f.expected_status) } td { (f.reported_status) }
                td { (f.after_status) } td { (f.change_time.to_string()) } td.mono { (f.request_id) }
            } } }
        }
    }
}

pub async fn loan(
    State(state): State<AppState>,
    s: Signed,
    Path(no): Path<String>,
    Query(n): Query<Notice>,
) -> Page {
    let v = state
        .store
        .loan_view(&no)
        .await?
        .ok_or_else(|| not_found(format!("loan note `{no}`")))?;
    let content = html! {
        dl.facts {
            dt { "status" } dd #loan-status { (v.status) }
            dt { "owning app" } dd { a href={ "/console/calls?app=" (enc(&v.app_key)) } { (v.app_key) } }
            @if let Some(c) = &v.customer_id { dt { "customer" } dd { (c) } }
            @if let Some(i) = &v.institution_loan_no { dt { "institution loan no" } dd { (i) } }
            dt { "last change (GMT+8)" } dd { (v.last_change_time) }
            dt { "reconciliation" } dd #reconciliation-state {
                @if v.needs_reconciliation { span.bad { "needs reconciliation" } } @else { "in order" }
            }
        }
        @if !v.reconciliation_reasons.is_empty() {
            h2 { "Open flags" }
            (flags_table(&v.reconciliation_reasons))
        }
        @if v.needs_reconciliation && may_change(&s) {
            form.stack #resolve method="post" action={ "/console/loans/" (enc(&v.loan_apply_no)) "/resolve" } {
                (s.csrf_field())
                label { "Resolution note " textarea #resolve-note name="note" required maxlength="2000" rows="3" placeholder="What was found and done" {} }
                button #resolve-button type="submit" { "Resolve" }
            }
        }
        h2 { "History" }
        ol.timeline #timeline {
            @for e in &v.history {
                @match e {
                    TimelineEntry::Call(h) => (call_entry(h)),
                    TimelineEntry::Resolution(r) => li.resolution {
                        span.when { (r.at) }
                        span.outcome.resolved { "resolved" }
                        " by " strong { (r.by) } " (" (r.source) "): " q { (r.note) }
                    },
                }
            }
        }
    };
    layout(
        &s,
        "calls",
        &format!("Loan note {}", v.loan_apply_no),
        n.notice.as_deref(),
        content,
    )
}

pub async fn resolve(State(state): State<AppState>, Path(no): Path<String>, p: Posted) -> Page {
    p.signed.require(Role::Operator)?;
    let note = resolution_note(p.get("note").unwrap_or(""))?;
    let n = state
        .store
        .resolve_loan(&no, note, &p.signed.op.actor)
        .await
        .map_err(crate::reports::refused)?;
    Ok(see_other(
        &format!("/console/loans/{}", enc(&no)),
        &format!("Resolved {n} flag(s); the resolution is in the history and the audit."),
    ))
}

pub async fn process(
    State(state): State<AppState>,
    s: Signed,
    Path((channel_id, process_type, process_no)): Path<(String, String, String)>,
) -> Page {
    let key = ProcessKey {
        channel_id,
        process_type,
        process_no,
    };
    let v = state.store.process_view(&key).await?.ok_or_else(|| {
        not_found(format!(
            "process {}/{}/{}",
            key.channel_id, key.process_type, key.process_no
        ))
    })?;
    let content = html! {
        dl.facts {
            dt { "status" } dd #process-status { (v.status) }
            dt { "channel" } dd { (v.channel_id) }
            dt { "type" } dd { (v.process_type) }
            dt { "user" } dd { (v.user) " (" (v.user_id) ")" }
            dt { "owning app" } dd { a href={ "/console/calls?app=" (enc(&v.app_key)) } { (v.app_key) } }
            @if let Some(t) = &v.submit_time { dt { "submitted" } dd { (t) } }
            @if let Some(t) = &v.complete_time { dt { "completed" } dd { (t) } }
            @if let Some(f) = &v.fund_products { dt { "fund products" } dd { (f.join(", ")) } }
            dt { "last change (GMT+8)" } dd { (v.updated_at) }
        }
        h2 { "History" }
        ol.timeline #timeline { @for h in &v.history { (call_entry(h)) } }
    };
    let title = format!(
        "Process {}/{}/{}",
        v.channel_id, v.process_type, v.process_no
    );
    layout(&s, "calls", &title, None, content)
}
