//! SPEC 4.1: the operator console, driven in headless Chromium (Debian's `chromium` and
//! `chromium-driver`) through fantoccini against the real gateway, with data sent through the
//! SDK. Where Chromium is missing the browser tests say SKIPPED and why. The forms' CSRF and
//! the viewer's refusal are also checked with plain HTTP, as an attacker would post.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use loanwire_client::{RetryPolicy, TopClient};
use loanwire_gateway::operators;
use loanwire_store::Role;
use serde_json::{json, Map};
use tempfile::TempDir;

use crate::helpers::*;
use crate::receiver::{free_port, within, Receiver, Reply};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Headless Chromium behind its own chromedriver, with a fresh profile; both end with it.
struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A browser, or `None` having said SKIPPED when Chromium or its driver is not installed.
async fn browser() -> Option<Browser> {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        if !Path::new(path).exists() {
            skipped(&format!(
                "{path} is missing (Debian package `{package}`; .ci/run installs it)"
            ));
            return None;
        }
    }
    let port = free_port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = TempDir::new().unwrap();
    let mut caps = Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver takes a moment to listen: bounded retries.
    let mut last = String::new();
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => {
                return Some(Browser {
                    client,
                    driver,
                    _profile: profile,
                })
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver on {url} did not start a session: {last}");
}

/// Saves a screenshot under `$LOANWIRE_SCREENSHOTS` when it is set (the README's pictures
/// are taken this way: `LOANWIRE_SCREENSHOTS=docs/screenshots cargo test console`).
async fn screenshot(c: &Client, name: &str) {
    let Ok(dir) = std::env::var("LOANWIRE_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The text of the element `css` matches, waiting (at most 5 s) for a page still loading.
async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits (at most 5 s) for the browser to be on a page whose path ends with `suffix`: a click
/// returns before the navigation it starts has finished.
async fn on_page(c: &Client, suffix: &str) -> bool {
    within(5, || async {
        c.current_url()
            .await
            .is_ok_and(|u| u.path().ends_with(suffix))
    })
    .await
}

async fn present(c: &Client, css: &str) -> bool {
    !c.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

async fn sign_in(c: &Client, app: &TestApp, token: &str) {
    c.goto(&format!("{}/console/", app.base)).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login"),
        "signed out: the console sends to the sign-in page"
    );
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(on_page(c, "/console/").await, "signed in: the overview");
}

/// Submits the form `form_css` after filling `fields` (name → value).
async fn submit(c: &Client, form_css: &str, fields: &[(&str, &str)]) {
    let form = c.form(Locator::Css(form_css)).await.unwrap();
    for (name, value) in fields {
        form.set_by_name(name, value).await.unwrap();
    }
    form.submit().await.unwrap();
}

/// Reloads `url` until `css` matches, for at most `secs` seconds.
async fn reload_until(c: &Client, url: &str, css: &str, secs: u64) -> bool {
    within(secs, || async {
        c.goto(url).await.unwrap();
        present(c, css).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_platform_from_the_console_in_a_browser() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let receiver = Receiver::start().await;
    let app = spawn_app_with(|cfg| {
        cfg.events.allowed_subnets = vec!["127.0.0.0/8".into()];
        // After a failure the next try is an hour away: only "retry" sends it sooner.
        cfg.events.webhook_schedule_secs = vec![0, 3600];
    })
    .await;
    let base = app.base.clone();

    // Sign in.
    c.goto(&format!("{base}/console/login")).await.unwrap();
    screenshot(c, "sign-in").await;
    sign_in(c, &app, ADMIN_TOKEN).await;
    assert!(text(c, "#signed-in-as").await.contains("bootstrap"));

    // Create an app: its secret is shown once.
    c.goto(&format!("{base}/console/apps")).await.unwrap();
    submit(c, "#create-app", &[("name", "Acme Lending")]).await;
    let app_key = text(c, "#app-key").await;
    let first_secret = text(c, "#app-secret").await;
    assert_eq!(first_secret.len(), 32, "a new secret: {first_secret}");
    c.goto(&format!("{base}/console/apps")).await.unwrap();
    let source = c.source().await.unwrap();
    assert!(source.contains(&app_key) && !source.contains(&first_secret));

    // Rotate its secret.
    submit(
        c,
        &format!("tr[data-app='{app_key}'] form[action$='/rotate']"),
        &[("grace_hours", "1")],
    )
    .await;
    let secret = text(c, "#app-secret").await;
    assert_ne!(secret, first_secret);
    assert!(text(c, "main")
        .await
        .contains("previous secret keeps verifying"));
    screenshot(c, "app-secret").await;

    // Calls through the SDK with the new secret: one loan note gets a gap.
    let sdk = TopClient::builder(app.url(), &app_key, &secret)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let first = sdk
        .call(&change(
            "BR1",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "br-1",
        ))
        .await
        .unwrap();
    let request_id = first
        .reply()
        .request_id
        .clone()
        .expect("an envelope request_id");
    assert!(sdk
        .call(&change(
            "BR1",
            "OVERDUE",
            "CLEARED",
            "2024-01-02 00:00:00",
            "br-2"
        ))
        .await
        .unwrap()
        .is_accepted());
    for i in 0..4 {
        assert!(sdk
            .call(&callback(&format!("BP{i}"), "IN_PROCESSING"))
            .await
            .unwrap()
            .is_accepted());
    }

    // Find the first call by its request_id, then its loan note's timeline.
    c.goto(&format!("{base}/console/calls")).await.unwrap();
    submit(c, "#call-search", &[("request_id", &request_id)]).await;
    assert_eq!(text(c, "#call-id").await, request_id);
    assert_eq!(text(c, "#call-outcome").await, "applied");
    assert!(text(c, "#call-response").await.contains(&request_id));
    screenshot(c, "call").await;
    c.find(Locator::Id("call-subject"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(on_page(c, "/console/loans/BR1").await);
    assert_eq!(text(c, "#loan-status").await, "CLEARED");
    let timeline = c.find_all(Locator::Css("#timeline li.call")).await.unwrap();
    assert_eq!(timeline.len(), 2);
    assert!(text(c, "#timeline").await.contains("NEW → NORMAL"));
    screenshot(c, "loan-note").await;

    // The overview's chart holds the calls (counted within seconds).
    let overview = format!("{base}/console/");
    assert!(
        within(10, || async {
            c.goto(&overview).await.unwrap();
            let chart = c.find(Locator::Id("calls-chart")).await.unwrap();
            chart.attr("data-total").await.unwrap().as_deref() == Some("6")
        })
        .await,
        "the chart shows the six calls"
    );
    assert!(present(c, "#calls-chart rect[data-series='applied']").await);
    assert!(text(c, "#per-app").await.contains(&app_key));
    screenshot(c, "overview").await;

    // An endpoint whose receiver fails: failed attempts show; fixed, "retry" delivers.
    receiver.set_plan(|_, _| Reply::status(500));
    c.goto(&format!("{base}/console/endpoints")).await.unwrap();
    submit(c, "#add-endpoint", &[("url", &receiver.url())]).await;
    receiver.set_secret(&text(c, "#endpoint-secret").await);
    let endpoint_id = text(c, "#endpoint-id").await;
    assert!(sdk
        .call(&callback("BP-hook", "SUCCESS"))
        .await
        .unwrap()
        .is_accepted());
    let endpoint_url = format!("{base}/console/endpoints/{endpoint_id}");
    assert!(
        reload_until(
            c,
            &endpoint_url,
            "#deliveries tr[data-status='pending']",
            10
        )
        .await,
        "the delivery is waiting for its next try"
    );
    assert!(
        within(10, || async { !receiver.got().is_empty() }).await,
        "the receiver was tried"
    );
    let href = c
        .find(Locator::Css("#deliveries tbody a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("a link to the delivery");
    let delivery_url = format!("{base}{href}");
    assert!(reload_until(c, &delivery_url, "#attempts tr[data-status='500']", 10).await);
    receiver.set_plan(|_, _| Reply::status(204));
    c.find(Locator::Css("form[action$='/retry'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text(c, "#notice").await.contains("Sent again"));
    assert!(
        within(10, || async {
            c.goto(&delivery_url).await.unwrap();
            text(c, "#delivery-status").await == "delivered"
        })
        .await,
        "retried and delivered"
    );
    assert_eq!(receiver.delivered().len(), 1);
    assert_eq!(receiver.bad_signatures(), 0);
    c.goto(&endpoint_url).await.unwrap();
    screenshot(c, "endpoint").await;

    // Resolve the flag from the reconciliation page; it is in the history and the audit.
    c.goto(&format!("{base}/console/reconciliation"))
        .await
        .unwrap();
    assert!(present(c, "#flagged tr[data-loan='BR1']").await);
    screenshot(c, "reconciliation").await;
    submit(
        c,
        "#flagged tr[data-loan='BR1'] form",
        &[("note", "confirmed the missed OVERDUE with Acme")],
    )
    .await;
    assert!(text(c, "#notice").await.contains("Resolved 1 flag"));
    assert_eq!(text(c, "#reconciliation-state").await, "in order");
    assert!(text(c, "#timeline li.resolution")
        .await
        .contains("confirmed the missed OVERDUE"));
    c.goto(&format!("{base}/console/audit")).await.unwrap();
    let row = text(c, "#audit tr[data-action='loan.resolve']").await;
    assert!(
        row.contains("bootstrap") && row.contains("loan:BR1"),
        "{row}"
    );
    screenshot(c, "audit").await;

    // Sign out ends the session.
    c.find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(on_page(c, "/console/login").await);
    c.goto(&overview).await.unwrap();
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/login"));
    b.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_controls_that_change_anything() {
    let Some(b) = browser().await else { return };
    let c = &b.client;
    let app = spawn_app().await;
    let (_, viewer) = operators::create(
        app.store.as_ref(),
        "vic",
        Role::Viewer,
        &operators::cli_actor(),
    )
    .await
    .unwrap();
    sign_in(c, &app, &viewer).await;
    assert!(text(c, "#signed-in-as").await.contains("viewer"));
    for page in ["/console/apps", "/console/endpoints"] {
        c.goto(&format!("{}{page}", app.base)).await.unwrap();
        assert!(
            !present(c, "main form[method='post']").await,
            "{page}: no form that changes anything"
        );
    }
    c.goto(&format!("{}/console/apps", app.base)).await.unwrap();
    assert!(
        text(c, "#apps").await.contains(&app.app_key),
        "but it reads"
    );
    b.client.clone().close().await.unwrap();
}

/// An HTTP client with its own cookie jar, signed in to the console with `token`.
async fn signed_in(app: &TestApp, token: &str) -> reqwest::Client {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .post(format!("{}/console/login", app.base))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "signed in");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    http
}

/// The CSRF token a console page carries in its forms.
async fn csrf_of(http: &reqwest::Client, url: &str) -> String {
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with its token")
        + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let http = signed_in(&app, ADMIN_TOKEN).await;
    let apps_url = format!("{}/console/apps", app.base);
    for form in [
        vec![("name", "Forged")],
        vec![("name", "Forged"), ("csrf", "not-the-token")],
    ] {
        let resp = http.post(&apps_url).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert!(resp.text().await.unwrap().contains("CSRF"));
    }
    assert_eq!(
        app.store.apps().await.unwrap().len(),
        1,
        "nothing was created"
    );
    let csrf = csrf_of(&http, &apps_url).await;
    let resp = http
        .post(&apps_url)
        .form(&[("name", "Real"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "with its token it goes through");
    assert_eq!(app.store.apps().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_viewer_posting_anyway_is_refused() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let (_, viewer) = operators::create(
        app.store.as_ref(),
        "val",
        Role::Viewer,
        &operators::cli_actor(),
    )
    .await
    .unwrap();
    let http = signed_in(&app, &viewer).await;
    let apps_url = format!("{}/console/apps", app.base);
    let csrf = csrf_of(&http, &apps_url).await;
    let key = &app.app_key;
    for (path, form) in [
        ("/console/apps".to_string(), vec![("name", "Sneaky")]),
        (format!("/console/apps/{key}/disable"), vec![]),
        ("/console/loans/X/resolve".to_string(), vec![("note", "n")]),
    ] {
        let mut form = form;
        form.push(("csrf", &csrf));
        let resp = http
            .post(format!("{}{path}", app.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{path}");
    }
    assert_eq!(app.store.apps().await.unwrap().len(), 1);
    assert!(app.store.app(key).await.unwrap().unwrap().enabled);
}

#[tokio::test]
async fn a_session_ends_when_it_expires_when_its_token_is_revoked_and_on_sign_out() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let overview = format!("{}/console/", app.base);
    let status = |http: reqwest::Client| {
        let url = overview.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };

    // Expired.
    let http = signed_in(&app, ADMIN_TOKEN).await;
    assert_eq!(status(http.clone()).await, 200);
    app.exec_sql("UPDATE console_sessions SET expires_ms = 0")
        .unwrap();
    assert_eq!(status(http).await, 303, "expired: back to sign-in");

    // Revoked.
    let (_, token) = operators::create(
        app.store.as_ref(),
        "rita",
        Role::Operator,
        &operators::cli_actor(),
    )
    .await
    .unwrap();
    let http = signed_in(&app, &token).await;
    assert_eq!(status(http.clone()).await, 200);
    app.store
        .revoke_token("rita", &operators::cli_actor())
        .await
        .unwrap();
    assert_eq!(status(http).await, 303, "revoked: the session ends with it");

    // Signed out.
    let http = signed_in(&app, ADMIN_TOKEN).await;
    let csrf = csrf_of(&http, &overview).await;
    let resp = http
        .post(format!("{}/console/logout", app.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(status(http).await, 303);

    // A bad token does not sign in.
    let resp = reqwest::Client::new()
        .post(format!("{}/console/login", app.base))
        .form(&[("token", "lwt_000000000000_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn console_pages_answer_html_with_a_strict_content_security_policy() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    assert!(app
        .client()
        .call(&change(
            "CS1",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "cs1"
        ))
        .await
        .unwrap()
        .is_accepted());
    let http = signed_in(&app, ADMIN_TOKEN).await;
    for page in [
        "/console/",
        "/console/?window=day",
        "/console/apps",
        "/console/calls",
        "/console/calls?outcome=applied&from=2020-01-01T00:00",
        "/console/loans/CS1",
        "/console/endpoints",
        "/console/reconciliation",
        "/console/reconciliation?window_hours=168",
        "/console/audit",
    ] {
        let resp = http
            .get(format!("{}{page}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{page}");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{page}: {csp}");
        let body = resp.text().await.unwrap();
        assert!(body.starts_with("<!DOCTYPE html>"), "{page}");
    }
    for (page, code) in [
        ("/console/loans/NOPE", 404),
        ("/console/calls/NOPE", 404),
        ("/console/calls?outcome=weird", 400),
        ("/console/calls?from=yesterday", 400),
        ("/console/endpoints/ep_nope", 404),
    ] {
        let resp = http
            .get(format!("{}{page}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), code, "{page}");
        assert!(
            resp.text().await.unwrap().contains("id=\"failure\""),
            "{page}"
        );
    }
    let csv = http
        .get(format!("{}/console/reconciliation.csv", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
}
