//! The TOP endpoint, `/router/rest` (SPEC 1). A call goes through named steps:
//! [`read`] (parameters, system parameters, method) → [`auth::authenticate`] (app, signature,
//! timestamp) → [`dispatch`] (grants, rate limit, the API's own parsing and checks, giving a
//! unit of work) → [`commit`] (the store runs the unit durably) → [`respond`].
//! Every answer is HTTP 200 with a TOP envelope; a call refused before it is authenticated is
//! answered by [`reject`] and not recorded.

pub mod auth;
pub mod request;

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use loanwire_store::App;
use loanwire_top::encode::form_decode;
use loanwire_top::envelope::{render_error, Style};
use loanwire_top::text::echo;
use loanwire_top::{Format, Params, SystemParams, TopDateTime, TopError};

use crate::apis::{self, Api, CallMeta, Prepared};
use crate::errors;
use crate::state::AppState;

/// One call: its envelope `request_id` and the one clock reading it is judged and stamped by.
pub struct Call {
    pub id: String,
    pub now: TopDateTime,
    started: Instant,
}

impl Call {
    fn start() -> Call {
        let now = TopDateTime::now();
        Call {
            id: new_request_id(now.epoch_millis()),
            now,
            started: Instant::now(),
        }
    }
}

/// 32 hex characters: the time in milliseconds, a per-process counter, then randomness. Ids that
/// grow with time keep the inbox's `request_id` index append-mostly (a random id dirties a random
/// index page on every call); the random part keeps them unique across gateway instances.
fn new_request_id(now_ms: i64) -> String {
    use std::sync::atomic::{AtomicU16, Ordering};
    static COUNTER: AtomicU16 = AtomicU16::new(0);
    let millis = now_ms as u64 & 0xFFFF_FFFF_FFFF;
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random: u64 = rand::random();
    format!("{millis:012x}{count:04x}{random:016x}")
}

/// A call as read: every parameter, its answer's style, its system parameters and API.
pub struct Request {
    pub params: Params,
    /// Names of file parameters: not signed, recorded as `<file>`.
    pub files: Vec<String>,
    pub style: Style,
    pub sys: SystemParams,
    pub api: Api,
}

/// A call answered before it was authenticated: with what it could be read of it.
pub struct Rejected {
    style: Style,
    method: Option<String>,
    app_key: Option<String>,
    error: TopError,
}

impl Rejected {
    fn of(style: Style, params: &Params, error: TopError) -> Rejected {
        Rejected {
            style,
            method: params.get("method").map(|m| echo(m).into_owned()),
            app_key: params.get("app_key").map(|k| echo(k).into_owned()),
            error,
        }
    }
}

pub async fn router_rest(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let call = Call::start();
    let request = match read(&state, &uri, &headers, body).await {
        Ok(r) => r,
        Err(rejected) => return reject(&state, &call, rejected),
    };
    let app = match auth::authenticate(&state, &call, &request).await {
        Ok(app) => app,
        Err(e) => {
            return reject(
                &state,
                &call,
                Rejected::of(request.style, &request.params, e),
            )
        }
    };
    // Authenticated: from here on, every call is recorded in the inbox.
    let unit = dispatch(&state, &call, &request, &app);
    let (outcome, body) = commit(&state, &call, request.style.format, unit).await;
    respond(&state, &call, &request, &app, outcome, body)
}

/// Reads the parameters from wherever they came, then the system parameters and the method.
pub async fn read(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Request, Rejected> {
    let cfg = &state.config;
    let limits = request::Limits {
        max_body: cfg.max_body_bytes,
        max_params: cfg.max_params,
        body_timeout: std::time::Duration::from_secs(cfg.body_timeout_secs),
    };
    let received = match request::read(uri, headers, body, limits).await {
        Ok(r) => r,
        Err(unread) => {
            // Answer in the format asked for in what could be read; failing that, in the
            // query string (a query that could not be decoded whole may still name it).
            let mut known = unread.params;
            if known.get("format").is_none() {
                if let Some(query) = uri.query().and_then(|q| form_decode(q.as_bytes()).ok()) {
                    known = query.into_iter().collect();
                }
            }
            return Err(Rejected::of(style_of(&known), &known, unread.error));
        }
    };
    let params = received.params;
    let style = style_of(&params);
    let sys = SystemParams::parse(&params).map_err(|e| Rejected::of(style, &params, e))?;
    let Some(api) = Api::from_method(&sys.method) else {
        let e = errors::unknown_method(&sys.method);
        return Err(Rejected::of(style, &params, e));
    };
    Ok(Request {
        params,
        files: received.files,
        style,
        sys,
        api,
    })
}

fn style_of(params: &Params) -> Style {
    let (format, simplify) = SystemParams::response_format(params);
    Style { format, simplify }
}

/// The unit of work that answers an authenticated call: a refusal when the app may not call
/// the method now, else the API's own.
pub fn dispatch(state: &AppState, call: &Call, request: &Request, app: &App) -> Prepared {
    let meta = CallMeta {
        call_id: call.id.clone(),
        now: call.now,
        app_key: app.app_key.clone(),
        method: request.sys.method.clone(),
        params: recorded_params(request),
        style: request.style,
    };
    if !app.may_call(&request.sys.method) {
        let e =
            errors::permission_denied(format!("the app is not granted `{}`", request.sys.method));
        return apis::refusal(meta, e, None).into();
    }
    if !state.limits.allow(app) {
        return apis::refusal(meta, errors::rate_limited(), None).into();
    }
    request.api.prepare(state, app, &request.params, meta)
}

/// Every parameter as received, as a JSON object; file parameters as `<file>`.
fn recorded_params(request: &Request) -> String {
    let rendered = if request.files.is_empty() {
        serde_json::to_string(&request.params)
    } else {
        let mut with_files: std::collections::BTreeMap<&str, &str> =
            request.params.iter().collect();
        for f in &request.files {
            with_files.insert(f, "<file>");
        }
        serde_json::to_string(&with_files)
    };
    rendered.expect("text serializes")
}

/// Runs the unit durably; its outcome and the exact body to send, or code 15 when the store
/// failed (nothing was applied).
pub async fn commit(
    state: &AppState,
    call: &Call,
    format: Format,
    unit: Prepared,
) -> (&'static str, String) {
    match state.store.transact_reading(unit.reads, unit.work).await {
        Ok(r) => (r.outcome.as_str(), r.response),
        Err(e) => {
            tracing::error!(request_id = %call.id, error = %e, "call not committed");
            let err = errors::storage_unavailable().with_request_id(&call.id);
            ("unavailable", render_error(&err, format))
        }
    }
}

/// Counts, logs and sends an authenticated call's answer.
pub fn respond(
    state: &AppState,
    call: &Call,
    request: &Request,
    app: &App,
    outcome: &str,
    body: String,
) -> Response {
    let latency = call.started.elapsed();
    state.metrics.count(request.api.method(), outcome);
    state.metrics.latency.observe(latency.as_secs_f64());
    tracing::info!(
        request_id = %call.id, app = %app.app_key, method = %request.sys.method, outcome,
        latency_us = latency.as_micros() as u64, "call"
    );
    http_200(request.style.format, body)
}

/// Counts, logs and sends the answer to a call refused before authentication.
pub fn reject(state: &AppState, call: &Call, r: Rejected) -> Response {
    let err = r.error.with_request_id(&call.id);
    let counted_as = match r.app_key.as_deref() {
        Some(key) if state.apps.known(key) => key,
        _ => crate::reports::UNKNOWN_APP,
    };
    state.rejections.count(counted_as, err.code);
    let latency = call.started.elapsed();
    state
        .metrics
        .count(method_label(r.method.as_deref()), "rejected");
    state.metrics.latency.observe(latency.as_secs_f64());
    tracing::info!(
        request_id = %call.id, app = r.app_key.as_deref().unwrap_or("-"),
        method = r.method.as_deref().unwrap_or("-"), outcome = "rejected", code = err.code,
        sub_code = err.sub_code.as_deref().unwrap_or("-"),
        latency_us = latency.as_micros() as u64, "call"
    );
    http_200(r.style.format, render_error(&err, r.style.format))
}

fn http_200(format: Format, body: String) -> Response {
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
