//! Webhook endpoints: add, disable/enable, rotate the secret, recover since a time; each one's
//! deliveries with their attempts, and retry.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use loanwire_store::delivery::{DeliveryStatus, Endpoint};
use loanwire_store::Role;
use loanwire_top::time::now_ms;
use maud::html;
use serde::Deserialize;

use super::{
    action, bad_request, enc, layout, may_change, not_found, parse_local, see_other, Page, Posted,
    Signed,
};
use crate::delivery::endpoints::{self, NewEndpoint};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

fn types_text(e: &Endpoint) -> String {
    e.types
        .as_ref()
        .map_or_else(|| "every type".into(), |t| t.join(", "))
}

pub async fn list(State(state): State<AppState>, s: Signed, Query(n): Query<Notice>) -> Page {
    let list = state.store.endpoints().await?;
    let content = html! {
        @if list.is_empty() { p.empty { "No endpoints yet." } } @else {
            table #endpoints {
                thead { tr { th { "id" } th { "url" } th { "events" } th { "state" } th { "description" } } }
                tbody { @for e in &list { tr {
                    td { a href={ "/console/endpoints/" (enc(&e.id)) } { (e.id) } }
                    td.url { (e.url) }
                    td { (types_text(e)) }
                    td { @if e.enabled { "enabled" } @else { span.bad { "disabled" } @if let Some(r) = &e.disabled_reason { " — " (r) } } }
                    td { (e.description) }
                } } }
            }
        }
        @if may_change(&s) {
            h2 { "Add an endpoint" }
            form.stack #add-endpoint method="post" action="/console/endpoints" {
                (s.csrf_field())
                label { "URL " input #endpoint-url type="url" name="url" required maxlength="2048" placeholder="https://consumer.example/hooks/loanwire"; }
                label { "Event types (comma-separated; empty: every type) " input type="text" name="types"; }
                label { "Description " input type="text" name="description" maxlength="500"; }
                button #add-endpoint-button type="submit" { "Add" }
            }
        }
    };
    layout(
        &s,
        "endpoints",
        "Webhook endpoints",
        n.notice.as_deref(),
        content,
    )
}

pub async fn add(State(state): State<AppState>, p: Posted) -> Page {
    p.signed.require(Role::Operator)?;
    let types = p.field("types").map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    });
    let spec = NewEndpoint {
        url: p.field("url").unwrap_or_default(),
        types,
        description: p.field("description").unwrap_or_default(),
    };
    let e = endpoints::add(state.store.as_ref(), &state.guard, spec, &p.signed.op.actor).await?;
    secret_page(
        &p.signed,
        &e,
        "The endpoint is added: it receives events from now on.",
    )
}

fn secret_page(s: &Signed, e: &Endpoint, what: &str) -> Page {
    let content = html! {
        p.notice { (what) }
        div.secret {
            p { "Endpoint " a #endpoint-id href={ "/console/endpoints/" (enc(&e.id)) } { (e.id) } }
            p { "Signing secret " code #endpoint-secret { (e.secret) } }
            p.warn { "Copy the secret now: it is not shown again. Verify deliveries with any Standard Webhooks library." }
        }
    };
    layout(s, "endpoints", &format!("Endpoint {}", e.id), None, content)
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    status: Option<String>,
    before: Option<i64>,
    notice: Option<String>,
}

const PAGE: u32 = 50;

pub async fn one(
    State(state): State<AppState>,
    s: Signed,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Page {
    let e = endpoints::find(state.store.as_ref(), &id).await?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(st) => Some(
            DeliveryStatus::parse(st)
                .ok_or_else(|| bad_request(format!("unknown delivery status `{st}`")))?,
        ),
    };
    let list = state.store.deliveries(&id, status, q.before, PAGE).await?;
    let backlog = state.store.backlog(&id).await?;
    let next = (list.len() as u32 == PAGE)
        .then(|| list.last().map(|d| d.seq))
        .flatten();
    let base = format!("/console/endpoints/{}", enc(&e.id));
    let content = html! {
        dl.facts {
            dt { "url" } dd.url { (e.url) }
            dt { "events" } dd { (types_text(&e)) }
            dt { "state" } dd #endpoint-state { @if e.enabled { "enabled" } @else { span.bad { "disabled" } @if let Some(r) = &e.disabled_reason { " — " (r) } } }
            dt { "failed events in a row" } dd { (e.failures_in_a_row) }
            dt { "backlog" } dd #backlog { (backlog.pending) " pending"
                @if let Some(ms) = backlog.oldest_pending_ms { ", oldest " (format!("{:.1}", (now_ms() - ms).max(0) as f64 / 1000.0)) " s" } }
            @if !e.description.is_empty() { dt { "description" } dd { (e.description) } }
        }
        @if may_change(&s) {
            div.actions {
                @if e.enabled { (action(&s, &format!("{base}/disable"), "Disable", html!{})) }
                @else { (action(&s, &format!("{base}/enable"), "Enable (delivers what waited)", html!{})) }
                (action(&s, &format!("{base}/rotate"), "Rotate secret", html! {
                    label { "grace (hours) " input.short type="number" name="grace_hours" value="24" min="0" max="720"; }
                }))
                (action(&s, &format!("{base}/recover"), "Recover", html! {
                    label { "failed since (GMT+8) " input type="datetime-local" name="since" required; }
                }))
            }
        }
        h2 { "Deliveries" }
        p.tabs {
            a href=(base) class=[q.status.as_deref().unwrap_or("").is_empty().then_some("active")] { "all" }
            @for st in ["pending", "delivered", "failed"] {
                a href={ (base) "?status=" (st) } class=[(q.status.as_deref() == Some(st)).then_some("active")] { (st) }
            }
        }
        @if list.is_empty() { p.empty { "No deliveries." } } @else {
            table #deliveries {
                thead { tr { th.num { "seq" } th { "event" } th { "status" } th.num { "attempts" } th { "next attempt" } th { "updated" } } }
                tbody { @for d in &list { tr data-event=(d.event_id) data-status=(d.status.as_str()) {
                    td.num { (d.seq) }
                    td { a.mono href={ (base) "/deliveries/" (enc(&d.event_id)) } { (d.event_id) } }
                    td { span class={ "delivery " (d.status.as_str()) } { (d.status.as_str()) } }
                    td.num { (d.attempts) }
                    td { (d.next_attempt_at.clone().unwrap_or_default()) }
                    td { (d.updated_at) }
                } } }
            }
            @if let Some(n) = next { p { a href={ (base) "?before=" (n) (q.status.as_deref().map(|st| format!("&status={}", enc(st))).unwrap_or_default()) } { "Older deliveries →" } } }
        }
    };
    layout(
        &s,
        "endpoints",
        &format!("Endpoint {}", e.id),
        q.notice.as_deref(),
        content,
    )
}

pub async fn act(
    State(state): State<AppState>,
    Path((id, what)): Path<(String, String)>,
    p: Posted,
) -> Page {
    p.signed.require(Role::Operator)?;
    let store = state.store.as_ref();
    let by = &p.signed.op.actor;
    let back = format!("/console/endpoints/{}", enc(&id));
    match what.as_str() {
        "disable" | "enable" => {
            endpoints::set_enabled(store, &id, what == "enable", by).await?;
            Ok(see_other(&back, &format!("The endpoint is {what}d.")))
        }
        "rotate" => {
            let grace = super::grace(&p)?;
            let e = endpoints::rotate_secret(store, &id, grace, by).await?;
            secret_page(
                &p.signed,
                &e,
                "The secret is rotated: both sign until the grace ends.",
            )
        }
        "recover" => {
            let since = parse_local(&p.field("since").unwrap_or_default())?;
            let n = store.requeue(&id, None, Some(since), by).await?;
            Ok(see_other(
                &back,
                &format!("{n} failed deliveries are sent again."),
            ))
        }
        _ => Ok(not_found(format!("action `{what}`")).into_response()),
    }
}

pub async fn delivery(
    State(state): State<AppState>,
    s: Signed,
    Path((id, event_id)): Path<(String, String)>,
    Query(n): Query<Notice>,
) -> Page {
    let (d, attempts) = state
        .store
        .delivery(&id, &event_id)
        .await?
        .ok_or_else(|| not_found(format!("delivery of `{event_id}` to `{id}`")))?;
    let base = format!(
        "/console/endpoints/{}/deliveries/{}",
        enc(&id),
        enc(&event_id)
    );
    let content = html! {
        dl.facts {
            dt { "endpoint" } dd { a href={ "/console/endpoints/" (enc(&id)) } { (id) } }
            dt { "event" } dd.mono { (d.event_id) " (seq " (d.seq) ")" }
            dt { "status" } dd #delivery-status { span class={ "delivery " (d.status.as_str()) } { (d.status.as_str()) } }
            dt { "attempts" } dd { (d.attempts) }
            @if let Some(t) = &d.next_attempt_at { dt { "next attempt" } dd { (t) } }
        }
        @if may_change(&s) { (action(&s, &format!("{base}/retry"), "Retry now", html!{})) }
        h2 { "Attempts" }
        @if attempts.is_empty() { p.empty { "No attempts yet." } } @else {
            table #attempts {
                thead { tr { th { "at" } th.num { "HTTP status" } th.num { "latency ms" } th { "answer (first 1 KiB) or error" } } }
                tbody { @for a in &attempts { tr data-status=(a.status_code.map(|c| c.to_string()).unwrap_or_default()) {
                    td { (a.at) }
                    td.num { (a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "–".into())) }
                    td.num { (a.latency_ms) }
                    td { @if let Some(e) = &a.error { span.bad { (e) } } @else { code { (a.response.clone().unwrap_or_default()) } } }
                } } }
            }
        }
    };
    layout(&s, "endpoints", "Delivery", n.notice.as_deref(), content)
}

pub async fn retry(
    State(state): State<AppState>,
    Path((id, event_id)): Path<(String, String)>,
    p: Posted,
) -> Page {
    p.signed.require(Role::Operator)?;
    let n = state
        .store
        .requeue(&id, Some(&event_id), None, &p.signed.op.actor)
        .await?;
    let back = format!(
        "/console/endpoints/{}/deliveries/{}",
        enc(&id),
        enc(&event_id)
    );
    Ok(see_other(&back, &format!("Sent again ({n}).")))
}
