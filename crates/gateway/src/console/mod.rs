//! The operator console (SPEC 4.1) at `/console/`: HTML rendered here with maud, one style
//! sheet embedded in the binary, plain forms (no script). Sign-in takes an operator token and
//! gives a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS); every form
//! carries the session's CSRF token; a viewer sees no controls that change anything and is
//! refused if it posts anyway.
//!
//! One module per page: [`overview`], [`apps`], [`calls`], [`notes`] (loan notes and processes),
//! [`endpoints`], [`reconciliation`], [`audit`]; [`session`] signs in and out.

pub mod apps;
pub mod audit;
pub mod calls;
pub mod chart;
pub mod endpoints;
pub mod notes;
pub mod overview;
pub mod reconciliation;
pub mod session;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use loanwire_store::{Role, StoreError};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::admin::ApiError;
use crate::state::AppState;
pub use session::{Posted, Signed};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(overview::page))
        .route("/console/assets/style.css", get(style))
        .route("/console/login", get(session::form).post(session::sign_in))
        .route("/console/logout", post(session::sign_out))
        .route("/console/apps", get(apps::list).post(apps::create))
        .route("/console/apps/{app_key}/{action}", post(apps::act))
        .route("/console/calls", get(calls::search))
        .route("/console/calls/{call_id}", get(calls::one))
        .route("/console/loans/{loan_apply_no}", get(notes::loan))
        .route(
            "/console/loans/{loan_apply_no}/resolve",
            post(notes::resolve),
        )
        .route(
            "/console/processes/{channel_id}/{process_type}/{process_no}",
            get(notes::process),
        )
        .route(
            "/console/endpoints",
            get(endpoints::list).post(endpoints::add),
        )
        .route("/console/endpoints/{id}", get(endpoints::one))
        .route("/console/endpoints/{id}/{action}", post(endpoints::act))
        .route(
            "/console/endpoints/{id}/deliveries/{event_id}",
            get(endpoints::delivery),
        )
        .route(
            "/console/endpoints/{id}/deliveries/{event_id}/retry",
            post(endpoints::retry),
        )
        .route("/console/reconciliation", get(reconciliation::page))
        .route("/console/reconciliation.csv", get(reconciliation::csv))
        .route("/console/audit", get(audit::page))
}

const STYLE: &str = include_str!("style.css");

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

/// A console page that could not be shown: a status and a sentence, as HTML.
#[derive(Debug)]
pub struct Failure(pub StatusCode, pub String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "loanwire — " (self.0.as_u16()) } link rel="stylesheet" href="/console/assets/style.css"; }
                body {
                    main.narrow {
                        h1 { (self.0.canonical_reason().unwrap_or("Error")) }
                        p.error #failure { (self.1) }
                        p { a href="/console/" { "Back to the console" } }
                    }
                }
            }
        };
        html_response(self.0, body)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) if m.starts_with("no ") => Failure(StatusCode::NOT_FOUND, m),
            StoreError::Invalid(m) => Failure(StatusCode::BAD_REQUEST, m),
            other => Failure(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure(e.0, e.1)
    }
}

pub type Page = Result<Response, Failure>;

pub fn not_found(what: String) -> Failure {
    Failure(StatusCode::NOT_FOUND, format!("{what} not found"))
}

pub fn bad_request(what: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, what.into())
}

fn html_response(status: StatusCode, body: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        body.into_string(),
    )
        .into_response()
}

const NAV: [(&str, &str); 7] = [
    ("overview", "/console/"),
    ("apps", "/console/apps"),
    ("calls", "/console/calls"),
    ("reconciliation", "/console/reconciliation"),
    ("endpoints", "/console/endpoints"),
    ("audit", "/console/audit"),
    ("api", "/api/v1/openapi.json"),
];

/// A page in the console's frame: navigation, who is signed in, a notice, the content.
pub fn layout(
    s: &Signed,
    active: &str,
    title: &str,
    notice: Option<&str>,
    content: Markup,
) -> Page {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — loanwire" }
                link rel="stylesheet" href="/console/assets/style.css";
            }
            body {
                header {
                    a.brand href="/console/" { "loanwire" }
                    nav {
                        @for (name, href) in NAV {
                            a href=(href) class=[(name == active).then_some("active")] { (name) }
                        }
                    }
                    div.who {
                        span #signed-in-as { (s.op.actor.name) " · " (s.op.role.as_str()) }
                        form method="post" action="/console/logout" {
                            (s.csrf_field())
                            button.link #sign-out type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(n) = notice { p.notice #notice { (n) } }
                    (content)
                }
            }
        }
    };
    Ok(html_response(StatusCode::OK, body))
}

/// Whether the signed-in operator may change things (viewers see no such controls).
pub fn may_change(s: &Signed) -> bool {
    s.op.role >= Role::Operator
}

/// A small form that posts one action with the CSRF token: a button, and fields before it.
pub fn action(s: &Signed, href: &str, label: &str, fields: Markup) -> Markup {
    html! {
        form.inline method="post" action=(href) {
            (s.csrf_field())
            (fields)
            button type="submit" { (label) }
        }
    }
}

/// A JSON value shown readably.
pub fn pretty(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre { (text) } }
}

/// Percent-encodes one path segment or query value.
pub fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A notice carried over a redirect after a change (the page shows it escaped).
pub fn see_other(path: &str, notice: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}notice={}", enc(notice))).into_response()
}

/// A `yyyy-MM-ddTHH:mm` (from a `datetime-local` field) or `yyyy-MM-dd HH:mm:ss` time in GMT+8,
/// as epoch milliseconds.
pub fn parse_local(text: &str) -> Result<i64, Failure> {
    let t = text.trim().replace('T', " ");
    let parsed = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(&t, f).ok())
        .ok_or_else(|| {
            bad_request(format!(
                "`{text}` is not a time: yyyy-MM-dd HH:mm[:ss] in GMT+8"
            ))
        })?;
    Ok(parsed.and_utc().timestamp_millis() - 8 * 3_600_000)
}

/// The grace a rotation form asks for (`grace_hours`, 24 when left out, at most 30 days).
pub fn grace(p: &Posted) -> Result<std::time::Duration, Failure> {
    let hours = p
        .field("grace_hours")
        .unwrap_or_else(|| "24".into())
        .parse::<u64>()
        .ok()
        .filter(|h| *h <= 720)
        .ok_or_else(|| bad_request("grace is 0 to 720 hours"))?;
    Ok(std::time::Duration::from_secs(hours * 3600))
}

/// SVG that [`chart`] rendered (its text escaped there), placed as is.
pub fn raw(svg: String) -> Markup {
    PreEscaped(svg)
}
