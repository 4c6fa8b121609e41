//! The admin audit: who changed what, from where, when; newest first, by target.

use axum::extract::{Query, State};
use loanwire_store::AuditQuery;
use maud::html;
use serde::Deserialize;

use super::{enc, layout, pretty, Page, Signed};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    target: Option<String>,
    before: Option<i64>,
}

const PAGE: u32 = 50;

pub async fn page(State(state): State<AppState>, s: Signed, Query(q): Query<AuditParams>) -> Page {
    let target = q
        .target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from);
    let entries = state
        .store
        .audit(&AuditQuery {
            before_id: q.before,
            target: target.clone(),
            limit: PAGE,
        })
        .await?;
    let next = (entries.len() as u32 == PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let content = html! {
        form.search method="get" action="/console/audit" {
            label { "target " input type="text" name="target" value=(target.clone().unwrap_or_default()) placeholder="an app key, endpoint id, token name, loan:NO"; }
            button type="submit" { "Filter" }
        }
        @if entries.is_empty() { p.empty { "No entries." } } @else {
            table #audit {
                thead { tr { th { "at (GMT+8)" } th { "who" } th { "from" } th { "action" } th { "target" } th { "detail" } } }
                tbody { @for e in &entries { tr data-action=(e.action) {
                    td { (e.at) } td { (e.actor) } td { (e.source) } td { (e.action) }
                    td { a href={ "/console/audit?target=" (enc(&e.target)) } { (e.target) } }
                    td { (pretty(&e.detail)) }
                } } }
            }
            @if let Some(n) = next { p { a href={ "/console/audit?before=" (n) (target.as_deref().map(|t| format!("&target={}", enc(t))).unwrap_or_default()) } { "Older entries →" } } }
        }
    };
    layout(&s, "audit", "Audit", None, content)
}
