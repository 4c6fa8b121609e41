//! Signing in and out of the console, and the extractors every page takes: [`Signed`] (a
//! session that stands) and [`Posted`] (a form from such a session, its CSRF token checked).

use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use loanwire_store::reports::SessionRow;
use loanwire_store::Role;
use loanwire_top::time::now_ms;
use maud::{html, Markup, DOCTYPE};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{html_response, Failure};
use crate::operators::{self, Operator};
use crate::state::AppState;

/// The session cookie. `__Host-` pins it to this host and path `/` (and needs `Secure`), so it
/// is used under TLS; plain HTTP (the sandbox, a gateway behind a TLS proxy) takes the plain
/// name.
const COOKIE: &str = "lw_session";
const HOST_COOKIE: &str = "__Host-lw_session";

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn random() -> String {
    B64URL.encode(rand::rng().random::<[u8; 32]>())
}

/// The cookie's value from the request, if any.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE || *name == HOST_COOKIE)
        .map(|(_, value)| value.to_string())
}

fn set_cookie(state: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    let tls = state.config.tls_cert.is_some();
    let (name, secure) = if tls {
        (HOST_COOKIE, "; Secure")
    } else {
        (COOKIE, "")
    };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).expect("cookie text is ASCII")
}

/// A signed-in operator: the token behind the session still stands.
#[derive(Debug, Clone)]
pub struct Signed {
    pub op: Operator,
    pub csrf: String,
    id_hash: String,
}

impl Signed {
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// Refuses a viewer's change.
    pub fn require(&self, role: Role) -> Result<(), Failure> {
        self.op.require(role).map_err(Failure::from)
    }
}

/// Where a request without a session goes.
pub struct SignIn;

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to("/console/login").into_response()
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(value) = cookie(&parts.headers) else {
            return Err(SignIn.into_response());
        };
        let id_hash = hash(&value);
        let session = state
            .store
            .session(&id_hash)
            .await
            .map_err(|e| Failure::from(e).into_response())?;
        let Some(session) = session.filter(|s| s.expires_ms > now_ms()) else {
            return Err(SignIn.into_response());
        };
        let op = operators::of_session(
            state,
            &session.token_id,
            operators::source_of(&parts.extensions),
        )
        .await
        .map_err(|e| Failure::from(e).into_response())?;
        let Some(op) = op else {
            // The token was revoked (or the bootstrap token changed): the session ends with it.
            let _ = state.store.end_session(&id_hash).await;
            return Err(SignIn.into_response());
        };
        Ok(Signed {
            op,
            csrf: session.csrf,
            id_hash,
        })
    }
}

/// A form posted from a console page: the session stands and the form carries its CSRF token.
pub struct Posted {
    pub signed: Signed,
    pub form: Vec<(String, String)>,
}

impl Posted {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field, trimmed; `None` when absent or empty.
    pub fn field(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    }
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Form(form): Form<Vec<(String, String)>> = Form::from_request(req, state)
            .await
            .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.body_text()).into_response())?;
        let given = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(signed.csrf.as_bytes())) {
            return Err(Failure(
                StatusCode::FORBIDDEN,
                "this form did not come from a console page of this session (its CSRF token is missing or wrong): open the page again".into(),
            )
            .into_response());
        }
        Ok(Posted { signed, form })
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    error: Option<String>,
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Sign in — loanwire" }
                link rel="stylesheet" href="/console/assets/style.css";
            }
            body {
                main.narrow {
                    h1 { "loanwire console" }
                    @if let Some(e) = error { p.error #login-error { (e) } }
                    form method="post" action="/console/login" {
                        label for="token" { "Operator token" }
                        input #token type="password" name="token" autocomplete="off" required placeholder="lwt_…";
                        button #sign-in type="submit" { "Sign in" }
                    }
                    p.hint { "A token from " code { "loanwire token create --name NAME --role viewer|operator" } ", or the bootstrap LOANWIRE_ADMIN_TOKEN." }
                }
            }
        }
    };
    html_response(status, body)
}

pub async fn form(Query(q): Query<LoginQuery>) -> Response {
    login_page(StatusCode::OK, q.error.as_deref())
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    token: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    form: Result<Form<Credentials>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(c)) = form else {
        return login_page(StatusCode::BAD_REQUEST, Some("Give an operator token."));
    };
    let source = operators::source_of(&extensions);
    let op = match operators::authenticate(&state, c.token.trim(), source).await {
        Ok(op) => op,
        Err(e) if e.0 == StatusCode::UNAUTHORIZED => {
            return login_page(
                StatusCode::UNAUTHORIZED,
                Some("That token is not valid: it is unknown, revoked or mistyped."),
            )
        }
        Err(e) => return Failure::from(e).into_response(),
    };
    let value = random();
    let now = now_ms();
    let lifetime_ms = state.config.reports.session_hours as i64 * 3_600_000;
    let row = SessionRow {
        id_hash: hash(&value),
        token_id: op.token_id.clone(),
        csrf: random(),
        created_ms: now,
        expires_ms: now + lifetime_ms,
    };
    if let Err(e) = state.store.create_session(&row).await {
        return Failure::from(e).into_response();
    }
    tracing::info!(operator = %op.actor.name, source = %op.actor.source, "console sign-in");
    let mut response = Redirect::to("/console/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state, &value, lifetime_ms / 1000),
    );
    response
}

pub async fn sign_out(State(state): State<AppState>, posted: Posted) -> Response {
    if let Err(e) = state.store.end_session(&posted.signed.id_hash).await {
        return Failure::from(e).into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, "", 0));
    response
}
