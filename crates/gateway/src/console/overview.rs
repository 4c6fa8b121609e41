//! The overview: calls per interval by outcome (a chart), the shares, top error codes, calls per
//! app, signature failures, and each endpoint's backlog and delivery lag — over the last hour or
//! day, from the per-minute counts (bounded whatever the inbox holds).

use std::collections::HashMap;

use axum::extract::{Query, State};
use loanwire_store::reports::{MinuteCount, REJECTED};
use loanwire_top::time::{format_ms, now_ms};
use maud::html;
use serde::Deserialize;

use super::chart::{stacked_bars, Series};
use super::{enc, layout, raw, Page, Signed};
use crate::reports::{app_figures, top_codes, AppFigures};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct OverviewQuery {
    window: Option<String>,
    notice: Option<String>,
}

/// The outcomes in the chart, bottom up, with their colours.
const OUTCOMES: [(&str, &str); 5] = [
    ("applied", "#2e7d32"),
    ("duplicate", "#1565c0"),
    ("stale", "#f9a825"),
    ("refused", "#c62828"),
    (REJECTED, "#757575"),
];

/// Bars of `bucket_ms` over `[from, to)`: labels and, per outcome, the calls in each bar.
fn buckets(
    counts: &[MinuteCount],
    from: i64,
    bucket_ms: i64,
    bars: usize,
) -> (Vec<String>, Vec<Series<'static>>) {
    let labels = (0..bars)
        .map(|i| format_ms(from + i as i64 * bucket_ms)[11..16].to_string())
        .collect();
    let series = OUTCOMES
        .iter()
        .map(|(name, color)| {
            let mut values = vec![0; bars];
            for c in counts.iter().filter(|c| c.outcome == *name) {
                let i = ((c.minute_ms - from) / bucket_ms) as usize;
                if let Some(v) = values.get_mut(i) {
                    *v += c.n;
                }
            }
            Series {
                name,
                color,
                values,
            }
        })
        .collect();
    (labels, series)
}

fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

pub async fn page(
    State(state): State<AppState>,
    s: Signed,
    Query(q): Query<OverviewQuery>,
) -> Page {
    let day = q.window.as_deref() == Some("day");
    let (bucket_ms, bars) = if day { (15 * 60_000, 96) } else { (60_000, 60) };
    let now = now_ms();
    let to = now - now.rem_euclid(bucket_ms) + bucket_ms;
    let from = to - bucket_ms * bars as i64;
    let counts = state.store.minutes(from, to).await?;
    let (labels, series) = buckets(&counts, from, bucket_ms, bars);
    let chart = stacked_bars("calls-chart", &labels, &series);

    let apps = app_figures(&counts);
    // The whole window's figures are the apps' added up.
    let total = |f: fn(&AppFigures) -> i64| -> i64 { apps.iter().map(f).sum() };
    let calls = total(|a| a.calls);
    let signature_failures = total(|a| a.signature_failures);
    let mut codes: HashMap<&str, i64> = HashMap::new();
    for c in counts.iter().filter(|c| !c.code.is_empty()) {
        *codes.entry(&c.code).or_default() += c.n;
    }
    let top = top_codes(&codes, 10);

    let mut endpoints = Vec::new();
    for e in state.store.endpoints().await? {
        let backlog = state.store.backlog(&e.id).await?;
        let lag = backlog
            .oldest_pending_ms
            .map(|ms| format!("{:.1} s", (now - ms).max(0) as f64 / 1000.0));
        endpoints.push((e, backlog.pending, lag));
    }

    let content = html! {
        p.tabs {
            a href="/console/?window=hour" class=[(!day).then_some("active")] { "Last hour" }
            a href="/console/?window=day" class=[day.then_some("active")] { "Last day" }
        }
        section.tiles {
            div.tile { span.big #calls-total { (calls) } span { "calls" } }
            div.tile { span.big { (percent(total(|a| a.refused), calls)) } span { "refused" } }
            div.tile { span.big { (percent(total(|a| a.stale), calls)) } span { "stale" } }
            div.tile { span.big { (percent(total(|a| a.duplicate), calls)) } span { "duplicate" } }
            div.tile { span.big #signature-failures { (signature_failures) } span { "signature failures" } }
            div.tile { span.big { (total(|a| a.rejected)) } span { "rejected before authentication" } }
        }
        h2 { "Calls per " (if day { "15 minutes" } else { "minute" }) " by outcome (GMT+8)" }
        (raw(chart))
        div.columns {
            section {
                h2 { "Top error codes" }
                @if top.is_empty() { p.empty { "No errors." } } @else {
                    table #top-codes { thead { tr { th { "code" } th.num { "calls" } } }
                        tbody { @for c in &top { tr { td { (c.code) } td.num { (c.n) } } } } }
                }
            }
            section {
                h2 { "Calls per app" }
                @if apps.is_empty() { p.empty { "No calls." } } @else {
                    table #per-app {
                        thead { tr { th { "app" } th.num { "calls" } th.num { "refused" } th.num { "stale" } th.num { "duplicate" } th.num { "rejected" } th.num { "bad signature" } } }
                        tbody { @for a in &apps { tr {
                            td { a href={ "/console/calls?app=" (enc(&a.app_key)) } { (a.app_key) } }
                            td.num { (a.calls) } td.num { (percent(a.refused, a.calls)) }
                            td.num { (percent(a.stale, a.calls)) } td.num { (percent(a.duplicate, a.calls)) }
                            td.num { (a.rejected) } td.num { (a.signature_failures) }
                        } } }
                    }
                }
            }
        }
        h2 { "Event delivery" }
        @if endpoints.is_empty() { p.empty { "No webhook endpoints. " a href="/console/endpoints" { "Add one" } } } @else {
            table #delivery {
                thead { tr { th { "endpoint" } th { "url" } th { "state" } th.num { "backlog" } th.num { "oldest pending (lag)" } } }
                tbody { @for (e, pending, lag) in &endpoints { tr {
                    td { a href={ "/console/endpoints/" (enc(&e.id)) } { (e.id) } }
                    td.url { (e.url) }
                    td { @if e.enabled { "enabled" } @else { span.bad { "disabled" } } }
                    td.num { (pending) }
                    td.num { (lag.clone().unwrap_or_else(|| "–".into())) }
                } } }
            }
        }
        p.hint { "Counts are rolled up from the inbox every few seconds; calls refused before authentication are counted per app key that exists (others under “-”)." }
    };
    layout(&s, "overview", "Overview", q.notice.as_deref(), content)
}
