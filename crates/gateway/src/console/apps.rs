//! Partner apps: the list, create (the secret shown once), disable/enable, rotate the secret
//! with a grace period; grants and rate limits shown.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use loanwire_store::{App, Role};
use loanwire_top::time::format_ms;
use maud::{html, Markup};
use serde::Deserialize;

use super::{action, bad_request, enc, layout, may_change, see_other, Page, Posted, Signed};
use crate::apps::{self, NewApp};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

fn list_or_any(v: &Option<Vec<String>>) -> String {
    v.as_ref().map_or_else(|| "any".into(), |l| l.join(", "))
}

fn apps_table(s: &Signed, list: &[App]) -> Markup {
    html! {
        table #apps {
            thead { tr { th { "app key" } th { "name" } th { "state" } th { "methods" } th { "channels" } th.num { "rate limit /s" } th { "created" } @if may_change(s) { th { "" } } } }
            tbody { @for a in list { tr data-app=(a.app_key) {
                td { a href={ "/console/calls?app=" (enc(&a.app_key)) } { (a.app_key) } }
                td { (a.name) }
                td { @if a.enabled { "enabled" } @else { span.bad { "disabled" } } }
                td { (list_or_any(&a.methods)) }
                td { (list_or_any(&a.channels)) }
                td.num { (a.rate_limit.map_or_else(|| "default".to_string(), |r| r.to_string())) }
                td { (format_ms(a.created_ms)) }
                @if may_change(s) { td.actions {
                    @let base = format!("/console/apps/{}", enc(&a.app_key));
                    @if a.enabled { (action(s, &format!("{base}/disable"), "Disable", html!{})) }
                    @else { (action(s, &format!("{base}/enable"), "Enable", html!{})) }
                    (action(s, &format!("{base}/rotate"), "Rotate secret", html! {
                        label { "grace (hours) " input.short type="number" name="grace_hours" value="24" min="0" max="720"; }
                    }))
                } }
            } } }
        }
    }
}

fn create_form(s: &Signed) -> Markup {
    html! {
        h2 { "Create an app" }
        form.stack #create-app method="post" action="/console/apps" {
            (s.csrf_field())
            label { "Name " input type="text" name="name" required maxlength="200"; }
            label { "App key (optional, 8 digits) " input type="text" name="app_key" pattern="[0-9]{8}"; }
            label { "Methods (comma-separated; empty: every method) " input type="text" name="methods"; }
            label { "Channels (comma-separated; empty: any) " input type="text" name="channels"; }
            label { "Rate limit, calls/s (empty: the default) " input type="number" name="rate_limit" min="0"; }
            button type="submit" { "Create" }
        }
    }
}

pub async fn list(State(state): State<AppState>, s: Signed, Query(n): Query<Notice>) -> Page {
    let list = state.store.apps().await?;
    let content = html! {
        @if list.is_empty() { p.empty { "No apps yet." } } @else { (apps_table(&s, &list)) }
        @if may_change(&s) { (create_form(&s)) }
    };
    layout(&s, "apps", "Apps", n.notice.as_deref(), content)
}

fn comma_list(text: Option<String>) -> Option<Vec<String>> {
    text.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    })
}

/// The page that shows a new secret, this once.
fn secret_page(s: &Signed, app: &App, what: &str) -> Page {
    let content = html! {
        p.notice { (what) }
        div.secret {
            p { "App key " code #app-key { (app.app_key) } }
            p { "Secret " code #app-secret { (app.secret) } }
            p.warn { "Copy the secret now: it is stored sealed and is not shown again." }
        }
        @if let Some(until) = app.previous_secret_expires_ms {
            p { "The previous secret keeps verifying until " (format_ms(until)) " (GMT+8)." }
        }
        p { a href="/console/apps" { "Back to the apps" } }
    };
    layout(s, "apps", &format!("App {}", app.app_key), None, content)
}

pub async fn create(State(state): State<AppState>, p: Posted) -> Page {
    p.signed.require(Role::Operator)?;
    let rate_limit = p
        .field("rate_limit")
        .map(|r| {
            r.parse::<u32>()
                .map_err(|_| bad_request(format!("rate limit `{r}` is not a whole number")))
        })
        .transpose()?;
    let spec = NewApp {
        name: p.field("name").unwrap_or_default(),
        app_key: p.field("app_key"),
        channels: comma_list(p.field("channels")),
        methods: comma_list(p.field("methods")),
        rate_limit,
    };
    let app = apps::create(state.store.as_ref(), spec, &p.signed.op.actor).await?;
    secret_page(&p.signed, &app, "The app is created.")
}

pub async fn act(
    State(state): State<AppState>,
    Path((key, what)): Path<(String, String)>,
    p: Posted,
) -> Page {
    p.signed.require(Role::Operator)?;
    let store = state.store.as_ref();
    let by = &p.signed.op.actor;
    match what.as_str() {
        "disable" | "enable" => {
            let on = what == "enable";
            apps::set_enabled(store, &key, on, by).await?;
            Ok(see_other(
                "/console/apps",
                &format!("App {key} is {what}d."),
            ))
        }
        "rotate" => {
            let grace = super::grace(&p)?;
            let app = apps::rotate_secret(store, &key, grace, by).await?;
            secret_page(&p.signed, &app, "The secret is rotated.")
        }
        _ => Ok(super::not_found(format!("action `{what}`")).into_response()),
    }
}
