//! The TOP endpoint, `/router/rest`: every check of SPEC 1 in order, then the API's own work.
//! Every answer is HTTP 200 with a TOP envelope.

pub mod auth;
pub mod request;

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use loanwire_store::now_ms;
use loanwire_top::encode::form_decode;
use loanwire_top::envelope::{render_error, Style};
use loanwire_top::{ErrorCode, Format, Params, SystemParams, TopDateTime, TopError};

use crate::apis::{self, Api, CallMeta};
use crate::state::AppState;

/// 32 hex characters: the time in milliseconds, a per-process counter, then randomness. Ids that
/// grow with time keep the inbox's `request_id` index append-mostly (a random id dirties a random
/// index page on every call); the random part keeps them unique across gateway instances.
pub fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU16, Ordering};
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let millis = loanwire_store::now_ms() as u64 & 0xFFFF_FFFF_FFFF;
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random: u64 = rand::random();
    format!("{millis:012x}{count:04x}{random:016x}")
}

fn respond(format: Format, body: String) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    resp
}

/// Metric label for a method: unknown names are folded so that they cannot blow up cardinality.
fn method_label(method: Option<&str>) -> &str {
    match method {
        Some(m) if Api::from_method(m).is_some() => m,
        _ => "other",
    }
}

pub async fn router_rest(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let call_id = new_request_id();
    let received_ms = now_ms();

    let reject = |style: Style, method: Option<&str>, app: Option<&str>, err: TopError| {
        let err = err.with_request_id(&call_id);
        let latency = started.elapsed();
        state.metrics.count(method_label(method), "rejected");
        state.metrics.latency.observe(latency.as_secs_f64());
        tracing::info!(
            request_id = %call_id, app = app.unwrap_or("-"), method = method.unwrap_or("-"),
            outcome = "rejected", code = err.code, sub_code = err.sub_code.as_deref().unwrap_or("-"),
            latency_us = latency.as_micros() as u64, "call"
        );
        respond(style.format, render_error(&err, style.format))
    };

    let cfg = &state.config;
    let received = match request::read(
        &uri,
        &headers,
        body,
        request::Limits {
            max_body: cfg.max_body_bytes,
            max_params: cfg.max_params,
            body_timeout: std::time::Duration::from_secs(cfg.body_timeout_secs),
        },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            // Answer in the format the query string asked for, if it can be read.
            let query: Params = uri
                .query()
                .and_then(|q| form_decode(q.as_bytes()).ok())
                .map(|pairs| pairs.into_iter().collect())
                .unwrap_or_default();
            let (format, simplify) = SystemParams::response_format(&query);
            return reject(
                Style { format, simplify },
                query.get("method"),
                query.get("app_key"),
                e,
            );
        }
    };
    let params = received.params;
    let (format, simplify) = SystemParams::response_format(&params);
    let style = Style { format, simplify };
    let sys = match SystemParams::parse(&params) {
        Ok(s) => s,
        Err(e) => return reject(style, params.get("method"), params.get("app_key"), e),
    };
    let Some(api) = Api::from_method(&sys.method) else {
        let e = TopError::new(ErrorCode::InvalidMethod).with_sub(
            "isv.method-not-exists",
            format!("this gateway does not serve `{}`", sys.method),
        );
        return reject(style, Some(&sys.method), Some(&sys.app_key), e);
    };
    let app = match auth::authenticate(&state, &sys, &params).await {
        Ok(app) => app,
        Err(e) => return reject(style, Some(&sys.method), Some(&sys.app_key), e),
    };

    // Authenticated: from here on, every call is recorded in the inbox.
    let recorded_params = if received.files.is_empty() {
        serde_json::to_string(&params)
    } else {
        let mut with_files: std::collections::BTreeMap<&str, &str> = params.iter().collect();
        for f in &received.files {
            with_files.insert(f, "<file>");
        }
        serde_json::to_string(&with_files)
    };
    let meta = CallMeta {
        call_id: call_id.clone(),
        received_ms,
        now: TopDateTime::now(),
        app_key: app.app_key.clone(),
        method: sys.method.clone(),
        params: recorded_params.expect("text serializes"),
        style,
    };
    let work = if !app.may_call(&sys.method) {
        apis::refusal(meta, auth::method_not_granted(&sys.method), None)
    } else if !state.limits.allow(&app) {
        apis::refusal(meta, auth::rate_limited(), None)
    } else {
        api.prepare(&state, &app, &params, meta)
    };

    let (outcome, body) = match state.store.transact(work).await {
        Ok(r) => (r.outcome.as_str(), r.response),
        Err(e) => {
            tracing::error!(request_id = %call_id, error = %e, "call not committed");
            let err = TopError::service_unavailable(
                "服务暂不可用, 请稍后重试: storage unavailable, nothing was applied",
            )
            .with_request_id(&call_id);
            ("unavailable", render_error(&err, format))
        }
    };
    let latency = started.elapsed();
    state
        .metrics
        .count(method_label(Some(&sys.method)), outcome);
    state.metrics.latency.observe(latency.as_secs_f64());
    tracing::info!(
        request_id = %call_id, app = %app.app_key, method = %sys.method, outcome,
        latency_us = latency.as_micros() as u64, "call"
    );
    respond(format, body)
}
