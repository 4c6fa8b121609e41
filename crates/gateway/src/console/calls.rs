//! Calls: search the inbox by `request_id`, loan note, process, app, method, outcome and time
//! range; a call's page shows its parameters, outcome and the exact response sent.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use loanwire_domain::Outcome;
use loanwire_store::{InboxQuery, InboxRecord};
use maud::html;
use serde::Deserialize;

use super::{bad_request, enc, layout, not_found, parse_local, pretty, Page, Signed};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct Search {
    request_id: Option<String>,
    loan: Option<String>,
    process: Option<String>,
    app: Option<String>,
    method: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

const PAGE: u32 = 50;

/// The most inbox ids a method or outcome search walks for one page.
const WINDOW: i64 = 20_000;

/// What a call is about (its inbox `subject`), as a console link.
pub fn subject_link(subject: &str) -> Option<(String, String)> {
    if let Some(no) = subject.strip_prefix("loan:") {
        return Some((
            format!("/console/loans/{}", enc(no)),
            format!("loan note {no}"),
        ));
    }
    let key: [String; 3] = serde_json::from_str(subject.strip_prefix("process:")?).ok()?;
    let [c, t, n] = &key;
    Some((
        format!("/console/processes/{}/{}/{}", enc(c), enc(t), enc(n)),
        format!("process {c}/{t}/{n}"),
    ))
}

pub async fn search(State(state): State<AppState>, s: Signed, Query(q): Query<Search>) -> Page {
    // One call, one loan note or one process: its own page.
    if let Some(id) = given(&q.request_id) {
        return match state.store.inbox_call(id).await? {
            Some(_) => Ok(Redirect::to(&format!("/console/calls/{}", enc(id))).into_response()),
            None => Err(not_found(format!(
                "call with request_id `{id}` (the request_id of the answer the gateway sent)"
            ))),
        };
    }
    if let Some(no) = given(&q.loan) {
        return Ok(Redirect::to(&format!("/console/loans/{}", enc(no))).into_response());
    }
    if let Some(p) = given(&q.process) {
        let parts: Vec<&str> = p.split('/').map(str::trim).collect();
        let [c, t, n] = parts[..] else {
            return Err(bad_request(format!(
                "process `{p}` is not channel_id/type/process_no"
            )));
        };
        return Ok(Redirect::to(&format!(
            "/console/processes/{}/{}/{}",
            enc(c),
            enc(t),
            enc(n)
        ))
        .into_response());
    }
    let outcome = given(&q.outcome)
        .map(|o| Outcome::parse(o).ok_or_else(|| bad_request(format!("unknown outcome `{o}`"))))
        .transpose()?;
    let from = given(&q.from).map(parse_local).transpose()?;
    let to = given(&q.to).map(parse_local).transpose()?;
    // A time range becomes an id range from the per-minute counts, so the search walks the
    // inbox's primary key from the range's end instead of every newer call.
    let (mut after_id, mut before_id) = (None, q.before);
    if from.is_some() || to.is_some() {
        let (lo, hi) = (from.unwrap_or(0), to.unwrap_or(i64::MAX / 2));
        let (after, before) = state.store.id_range(lo, hi).await?;
        after_id = after;
        before_id = match (before_id, before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if after.is_none() && before.is_none() {
            // No calls counted in the range.
            before_id = Some(0);
        }
    }
    // Method and outcome have no index of their own (one per filter would be paid by every
    // call): such a search walks at most WINDOW ids a page, and offers to go on below them.
    let mut window_floor = None;
    if given(&q.method).is_some() || outcome.is_some() {
        let top = match before_id {
            Some(b) => b,
            None => {
                let newest = InboxQuery {
                    limit: 1,
                    ..InboxQuery::default()
                };
                state
                    .store
                    .inbox(&newest)
                    .await?
                    .first()
                    .map_or(0, |r| r.id)
                    + 1
            }
        };
        let floor = top - WINDOW;
        if floor > 0 && after_id.is_none_or(|a| a < floor) {
            after_id = Some(floor);
            window_floor = Some(floor);
        }
    }
    let query = InboxQuery {
        app_key: given(&q.app).map(String::from),
        method: given(&q.method).map(String::from),
        outcome,
        before_id,
        after_id,
        limit: PAGE,
    };
    let records = state.store.inbox(&query).await?;
    // Rows numbered within the range's ids but received outside it (clocks of several
    // instances) are left out.
    let records: Vec<InboxRecord> = records
        .into_iter()
        .filter(|r| {
            let ms = super::parse_local(&r.received_at).unwrap_or(0);
            from.is_none_or(|f| ms >= f) && to.is_none_or(|t| ms < t)
        })
        .collect();
    let next = match (records.len() as u32 == PAGE, window_floor) {
        (true, _) => records.last().map(|r| r.id),
        (false, Some(floor)) => Some(floor + 1),
        (false, None) => None,
    };
    let keep = |k: &str, v: &Option<String>| {
        given(v)
            .map(|v| format!("&{k}={}", enc(v)))
            .unwrap_or_default()
    };
    let filters = [
        keep("app", &q.app),
        keep("method", &q.method),
        keep("outcome", &q.outcome),
        keep("from", &q.from),
        keep("to", &q.to),
    ]
    .concat();
    let value = |v: &Option<String>| given(v).unwrap_or("").to_string();
    let content = html! {
        form.search #call-search method="get" action="/console/calls" {
            label { "request_id " input #request-id type="text" name="request_id" placeholder="the answer's request_id"; }
            label { "loan note " input type="text" name="loan" placeholder="loan_apply_no"; }
            label { "process " input type="text" name="process" placeholder="channel_id/type/process_no"; }
            label { "app " input type="text" name="app" value=(value(&q.app)); }
            label { "method " input type="text" name="method" value=(value(&q.method)); }
            label { "outcome " select name="outcome" {
                option value="" { "any" }
                @for o in ["applied", "duplicate", "stale", "refused"] {
                    option value=(o) selected[given(&q.outcome) == Some(o)] { (o) }
                }
            } }
            label { "from (GMT+8) " input type="datetime-local" name="from" value=(value(&q.from)); }
            label { "to " input type="datetime-local" name="to" value=(value(&q.to)); }
            button #search type="submit" { "Search" }
        }
        @if let Some(floor) = window_floor { p.hint { "Searched the " (WINDOW) " calls below id " (floor + WINDOW) "." } }
        @if records.is_empty() { p.empty { "No calls match." } } @else {
            table #calls {
                thead { tr { th { "received (GMT+8)" } th { "request_id" } th { "app" } th { "method" } th { "outcome" } th { "code" } th { "about" } } }
                tbody { @for r in &records { tr {
                    td { (r.received_at) }
                    td { a.mono href={ "/console/calls/" (enc(&r.call_id)) } { (r.call_id) } }
                    td { (r.app_key) }
                    td { (r.method) }
                    td { span class={ "outcome " (r.outcome) } { (r.outcome) } }
                    td { (r.error_code.map(|c| c.to_string()).or(r.biz_code.clone()).unwrap_or_default()) }
                    td { @if let Some((href, text)) = r.subject.as_deref().and_then(subject_link) { a href=(href) { (text) } } }
                } } }
            }
        }
        @if let Some(n) = next { p { a #next-page href={ "/console/calls?before=" (n) (filters) } { "Older calls →" } } }
    };
    layout(&s, "calls", "Calls", None, content)
}

pub async fn one(State(state): State<AppState>, s: Signed, Path(id): Path<String>) -> Page {
    let r = state
        .store
        .inbox_call(&id)
        .await?
        .ok_or_else(|| not_found(format!("call `{id}`")))?;
    let content = html! {
        dl.facts {
            dt { "request_id" } dd.mono #call-id { (r.call_id) }
            dt { "received (GMT+8)" } dd { (r.received_at) }
            dt { "app" } dd { a href={ "/console/calls?app=" (enc(&r.app_key)) } { (r.app_key) } }
            dt { "method" } dd { (r.method) }
            dt { "outcome" } dd { span #call-outcome class={ "outcome " (r.outcome) } { (r.outcome) } }
            @if let Some(c) = r.error_code { dt { "error code" } dd { (c) } }
            @if let Some(b) = &r.biz_code { dt { "business code" } dd { (b) } }
            @if let Some(k) = &r.idempotency_key { dt { "partner request_id" } dd.mono { (k) } }
            @if let Some((href, text)) = r.subject.as_deref().and_then(subject_link) { dt { "about" } dd { a #call-subject href=(href) { (text) } } }
        }
        h2 { "Parameters" }
        (pretty(&r.params))
        h2 { "What was decided" }
        (pretty(&r.detail))
        h2 { "The exact response sent" }
        pre #call-response { (r.response) }
    };
    layout(&s, "calls", &format!("Call {}", r.call_id), None, content)
}
