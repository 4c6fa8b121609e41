//! Webhooks (SPEC 3.3) against a real receiver that verifies every signature with the
//! `standardwebhooks` library: everything arrives, in order per subject, through failures,
//! timeouts and a closed port; 410, Retry-After, 20 failures in a row, the SSRF guard, the log.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::receiver::*;

/// The gateway with deliveries that retry every second, 2 s timeouts, and loopback allowed.
async fn webhook_app(adjust: impl FnOnce(&mut loanwire_gateway::Config)) -> TestApp {
    spawn_app_with(|c| {
        c.events.allowed_subnets = vec!["127.0.0.0/8".into()];
        c.events.webhook_schedule_secs = vec![0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        c.events.webhook_timeout_secs = 2;
        c.events.webhook_lease_secs = 10;
        adjust(c)
    })
    .await
}

/// Subscribes `url`; the endpoint's answer (with its secret).
async fn subscribe(app: &TestApp, url: &str, types: Option<Vec<&str>>) -> Value {
    let mut body = json!({ "url": url, "description": "test receiver" });
    if let Some(t) = types {
        body["types"] = json!(t);
    }
    let (status, e) = app
        .admin(Method::POST, "/api/v1/endpoints", ADMIN_TOKEN, Some(body))
        .await;
    assert_eq!(status, 201, "{e}");
    e
}

async fn subscribed(app: &TestApp, r: &Receiver) -> String {
    let e = subscribe(app, &r.url(), None).await;
    r.set_secret(e["secret"].as_str().unwrap());
    e["id"].as_str().unwrap().to_string()
}

/// `loans` loan notes, each moved `changes` times (in order, each its own call), the notes in
/// parallel; every call must be applied.
async fn send_changes(app: &TestApp, tag: &str, loans: usize, changes: usize) {
    let client = app.client();
    let mut tasks = Vec::new();
    for l in 0..loans {
        let client = client.clone();
        let no = format!("FI-{tag}-{l}");
        tasks.push(tokio::spawn(async move {
            let statuses = ["NEW", "NORMAL", "OVERDUE"];
            for c in 0..changes {
                let (before, after) = if c == 0 {
                    ("NEW", "NORMAL")
                } else {
                    (statuses[1 + (c + 1) % 2], statuses[1 + c % 2])
                };
                let at = format!("2024-01-01 00:{:02}:{:02}", c / 60, c % 60);
                let req = change(&no, before, after, &at, &format!("{no}-{c}"));
                let outcome = client.call(&req).await.unwrap();
                assert!(outcome.is_accepted(), "{no} #{c}: {outcome:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Every event id in the feed: one per applied call. On PostgreSQL an event shows in the feed
/// only once every older transaction on the database has ended (the feed's frontier), which
/// another instance's or the gateway's own bookkeeping may hold for a moment: wait for all of
/// them, at most 5 s.
async fn feed_ids(app: &TestApp) -> HashSet<String> {
    let (status, inbox) = app.read("/api/v1/inbox?outcome=applied&limit=500").await;
    assert_eq!(status, 200, "{inbox}");
    let applied = inbox["records"].as_array().unwrap().len();
    let mut ids = HashSet::new();
    for _ in 0..100 {
        let (status, page) = app.read("/api/v1/events?limit=1000").await;
        assert_eq!(status, 200, "{page}");
        ids = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        if ids.len() >= applied {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ids
}

async fn all_delivered(app: &TestApp, r: &Receiver, secs: u64) -> HashSet<String> {
    let expected = feed_ids(app).await;
    let ok = within(secs, || async { r.delivered_ids().is_superset(&expected) }).await;
    assert!(
        ok,
        "delivered {} of {} events: {:?}",
        r.delivered_ids().len(),
        expected.len(),
        r.got().iter().map(|g| g.status).collect::<Vec<_>>()
    );
    expected
}

#[tokio::test]
async fn every_event_reaches_the_receiver_signed_and_in_order_per_subject_with_subjects_in_parallel(
) {
    crate::skip_unless_backend!();
    let app = webhook_app(|_| {}).await;
    let r = Receiver::start().await;
    r.set_plan(|_, _| Reply {
        delay: Duration::from_millis(30),
        ..Reply::status(200)
    });
    let id = subscribed(&app, &r).await;
    send_changes(&app, "ord", 8, 6).await;
    let expected = all_delivered(&app, &r, 30).await;
    assert_eq!(expected.len(), 48);
    assert_eq!(r.bad_signatures(), 0, "every signature verifies");
    assert_eq!(assert_in_order_per_subject(&r.delivered()), 8);
    assert!(
        r.max_concurrent() > 1,
        "different subjects go in parallel (at most {} at once)",
        r.max_concurrent()
    );
    assert_eq!(r.overlaps(), 0, "one event is never sent twice at once");
    assert!(r.got().iter().all(|g| g.event_type == "loan.changed"));

    // Counted when the answer reaches the gateway, a moment after the receiver sent it.
    let delivered =
        format!("loanwire_webhook_attempts_total{{endpoint=\"{id}\",result=\"delivered\"}} 48");
    let metrics = || async {
        reqwest::get(format!("{}/metrics", app.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let counted = within(10, || async { metrics().await.contains(&delivered) }).await;
    let metrics = metrics().await;
    assert!(counted, "{metrics}");
    assert!(
        metrics.contains("loanwire_webhook_attempt_seconds_count"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_then_failing_then_slow_gets_everything_afterwards_in_order() {
    crate::skip_unless_backend!();
    let app = webhook_app(|_| {}).await;
    // Nothing listens on the port at first: connections are refused.
    let port = free_port();
    let e = subscribe(&app, &format!("http://127.0.0.1:{port}/hooks"), None).await;
    let id = e["id"].as_str().unwrap().to_string();
    send_changes(&app, "down", 4, 3).await;
    let refused = within(10, || async {
        let (_, page) = app
            .read(&format!("/api/v1/endpoints/{id}/deliveries?status=pending"))
            .await;
        page["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["attempts"].as_i64() > Some(0)))
    })
    .await;
    assert!(refused, "attempts were made while the port was closed");

    // Then it answers 500 five times, makes two requests time out, and recovers.
    let r = Receiver::start_on(port).await;
    r.set_secret(e["secret"].as_str().unwrap());
    r.set_plan(|n, _| match n {
        0..5 => Reply {
            body: "x".repeat(3000),
            ..Reply::status(500)
        },
        5..7 => Reply {
            delay: Duration::from_secs(3),
            ..Reply::status(200)
        },
        _ => Reply::status(204),
    });
    send_changes(&app, "down2", 2, 2).await;
    all_delivered(&app, &r, 40).await;
    assert_in_order_per_subject(&r.delivered());
    assert_eq!(r.bad_signatures(), 0);

    // The log holds the failed attempts: status, latency, at most 1 KiB of the answer (once
    // the last answers are recorded: the round after they came).
    let recorded = within(10, || async {
        let (_, e) = app.read(&format!("/api/v1/endpoints/{id}")).await;
        e["backlog"]["pending"] == 0
    })
    .await;
    assert!(recorded, "every delivery is recorded as done");
    let (_, page) = app
        .read(&format!("/api/v1/endpoints/{id}/deliveries?limit=500"))
        .await;
    let mut saw = (false, false, false);
    for d in page["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "delivered", "{d}");
        let event_id = d["event_id"].as_str().unwrap();
        let (status, detail) = app
            .read(&format!("/api/v1/endpoints/{id}/deliveries/{event_id}"))
            .await;
        assert_eq!(status, 200, "{detail}");
        for a in detail["attempts"].as_array().unwrap() {
            match a["status_code"].as_i64() {
                Some(500) => {
                    saw.0 = true;
                    assert_eq!(a["response"].as_str().unwrap().len(), 1024, "{a}");
                }
                None if a["error"].as_str().unwrap().contains("timed out") => saw.1 = true,
                None => saw.2 = true,
                _ => {}
            }
        }
    }
    assert_eq!(
        saw,
        (true, true, true),
        "500s, timeouts and refused connections are in the log"
    );
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_its_events_wait_until_it_is_enabled() {
    crate::skip_unless_backend!();
    let app = webhook_app(|_| {}).await;
    let r = Receiver::start().await;
    r.set_plan(|_, _| Reply::status(410));
    let id = subscribed(&app, &r).await;
    send_changes(&app, "gone", 1, 1).await;
    let disabled = within(10, || async {
        let (_, e) = app.read(&format!("/api/v1/endpoints/{id}")).await;
        e["enabled"] == false
    })
    .await;
    assert!(disabled, "a 410 disables the endpoint");
    let (_, e) = app.read(&format!("/api/v1/endpoints/{id}")).await;
    assert!(
        e["disabled_reason"].as_str().unwrap().contains("410"),
        "{e}"
    );
    send_changes(&app, "gone2", 2, 1).await;
    // Their deliveries are made, and wait: nothing more is sent while it is disabled.
    let waiting = within(10, || async {
        let (_, e) = app.read(&format!("/api/v1/endpoints/{id}")).await;
        e["backlog"]["pending"] == 3
    })
    .await;
    assert!(waiting, "three deliveries wait");
    assert_eq!(r.got().len(), 1);

    r.set_plan(|_, _| Reply::status(200));
    let (status, _) = app
        .admin(
            Method::POST,
            &format!("/api/v1/endpoints/{id}/enable"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200);
    all_delivered(&app, &r, 20).await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    crate::skip_unless_backend!();
    // Without Retry-After the next attempt would come at once.
    let app = webhook_app(|c| c.events.webhook_schedule_secs = vec![0, 0, 0]).await;
    let r = Receiver::start().await;
    r.set_plan(|n, _| match n {
        0 => Reply {
            retry_after: Some(2),
            ..Reply::status(429)
        },
        _ => Reply::status(200),
    });
    subscribed(&app, &r).await;
    send_changes(&app, "ra", 1, 1).await;
    all_delivered(&app, &r, 15).await;
    let got = r.got();
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
}

#[tokio::test]
async fn twenty_failed_events_in_a_row_disable_the_endpoint_and_enabling_delivers_what_waited() {
    crate::skip_unless_backend!();
    // One attempt per event: each failure is a failed event.
    let app = webhook_app(|c| c.events.webhook_schedule_secs = vec![0]).await;
    let r = Receiver::start().await;
    r.set_plan(|_, _| Reply::status(500));
    let id = subscribed(&app, &r).await;
    send_changes(&app, "fail", 20, 1).await;
    let disabled = within(20, || async {
        let (_, e) = app.read(&format!("/api/v1/endpoints/{id}")).await;
        e["enabled"] == false
    })
    .await;
    assert!(disabled, "disabled after 20 failed events");
    let (_, e) = app.read(&format!("/api/v1/endpoints/{id}")).await;
    assert_eq!(e["failures_in_a_row"], 20, "{e}");
    let (_, failed) = app
        .read(&format!(
            "/api/v1/endpoints/{id}/deliveries?status=failed&limit=100"
        ))
        .await;
    assert_eq!(
        failed["deliveries"].as_array().unwrap().len(),
        20,
        "failed stay visible"
    );
    send_changes(&app, "fail-later", 1, 1).await;

    r.set_plan(|_, _| Reply::status(200));
    let (status, _) = app
        .admin(
            Method::POST,
            &format!("/api/v1/endpoints/{id}/enable"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let all = all_delivered(&app, &r, 30).await;
    assert_eq!(all.len(), 21);
    let (_, audit) = app.read(&format!("/api/v1/audit?target={id}")).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["endpoint.recover", "endpoint.enable", "endpoint.create"]
    );
}

#[tokio::test]
async fn the_ssrf_guard_refuses_internal_addresses_unless_their_network_is_allowed() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    for url in [
        "http://127.0.0.1:9000/x",
        "http://localhost:9000/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9000/x",
        "http://192.168.0.10/x",
    ] {
        let (status, body) = app
            .admin(
                Method::POST,
                "/api/v1/endpoints",
                ADMIN_TOKEN,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("allowed_subnets"),
            "{body}"
        );
    }
    for (url, why) in [
        ("ftp://example.com/", "http or https"),
        ("http://u:p@example.com/", "credentials"),
        (
            &format!("https://example.com/{}", "a".repeat(3000)),
            "at most 2048",
        ),
    ] {
        let (status, body) = app
            .admin(
                Method::POST,
                "/api/v1/endpoints",
                ADMIN_TOKEN,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body["error"].as_str().unwrap().contains(why), "{body}");
    }
    let (_, list) = app.read("/api/v1/endpoints").await;
    assert_eq!(list, json!([]), "nothing was created");

    // Allowed when listed; and checked again at every delivery: a gateway started without
    // the allowance does not deliver there.
    let (dir, mut config, app_creds) = {
        let app = webhook_app(|_| {}).await;
        let r = Receiver::start().await;
        let id = subscribed(&app, &r).await;
        let stopped = app.stop().await;
        r.stop();
        (stopped.0, stopped.1, (stopped.2, id))
    };
    config.events.allowed_subnets = Vec::new();
    let ((key, secret), id) = app_creds;
    let app = spawn_in(dir, config, Some((key, secret))).await;
    send_changes(&app, "ssrf", 1, 1).await;
    let refused = within(10, || async {
        let (_, page) = app
            .read(&format!("/api/v1/endpoints/{id}/deliveries"))
            .await;
        let Some(event_id) = page["deliveries"][0]["event_id"].as_str().map(String::from) else {
            return false;
        };
        let (_, d) = app
            .read(&format!("/api/v1/endpoints/{id}/deliveries/{event_id}"))
            .await;
        d["attempts"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("may not reach"))
    })
    .await;
    assert!(refused, "the delivery was refused by the guard");
}

#[tokio::test]
async fn a_rotated_endpoint_secret_signs_beside_the_old_one_and_types_filter_what_is_sent() {
    crate::skip_unless_backend!();
    let app = webhook_app(|_| {}).await;
    let r = Receiver::start().await;
    let e = subscribe(&app, &r.url(), Some(vec!["loan.changed"])).await;
    let id = e["id"].as_str().unwrap();
    let (status, rotated) = app
        .admin(
            Method::POST,
            &format!("/api/v1/endpoints/{id}/rotate-secret"),
            ADMIN_TOKEN,
            Some(json!({ "grace_secs": 3600 })),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    // The receiver knows only the new secret: the new signature verifies.
    r.set_secret(rotated["secret"].as_str().unwrap());
    let outcome = app
        .client()
        .call(&callback("P-not-for-this-endpoint", "IN_PROCESSING"))
        .await
        .unwrap();
    assert!(outcome.is_accepted());
    send_changes(&app, "rot", 1, 1).await;
    let ok = within(10, || async { r.delivered().len() == 1 }).await;
    assert!(ok, "{:?}", r.got());
    let got = r.delivered();
    assert_eq!(got[0].signatures, 2, "both secrets sign during the grace");
    assert_eq!(
        got[0].event_type, "loan.changed",
        "process events are not for it"
    );
    assert_eq!(r.bad_signatures(), 0);
}

#[tokio::test]
async fn a_delivery_can_be_retried_by_hand_and_failed_ones_recovered_since_a_time() {
    crate::skip_unless_backend!();
    let app = webhook_app(|c| c.events.webhook_schedule_secs = vec![0]).await;
    let r = Receiver::start().await;
    r.set_plan(|_, _| Reply::status(500));
    let id = subscribed(&app, &r).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    send_changes(&app, "man", 2, 1).await;
    let failed = within(10, || async {
        let (_, p) = app
            .read(&format!("/api/v1/endpoints/{id}/deliveries?status=failed"))
            .await;
        p["deliveries"].as_array().is_some_and(|d| d.len() == 2)
    })
    .await;
    assert!(failed);
    r.set_plan(|_, _| Reply::status(200));
    let (_, p) = app
        .read(&format!("/api/v1/endpoints/{id}/deliveries?status=failed"))
        .await;
    let one = p["deliveries"][0]["event_id"].as_str().unwrap().to_string();
    let (status, body) = app
        .admin(
            Method::POST,
            &format!("/api/v1/endpoints/{id}/deliveries/{one}/retry"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(within(10, || async { r.delivered_ids().contains(&one) }).await);
    assert_eq!(r.delivered_ids().len(), 1, "only the one retried");

    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, body) = app
        .admin(
            Method::POST,
            &format!("/api/v1/endpoints/{id}/recover?since={since}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requeued"], 1, "{body}");
    all_delivered(&app, &r, 10).await;
    let (status, _) = app
        .admin(
            Method::POST,
            &format!("/api/v1/endpoints/{id}/recover?since=yesterday"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (_, before) = app.read(&format!("/api/v1/audit?target={id}")).await;
    let (status, body) = app
        .admin(
            Method::POST,
            &format!("/api/v1/endpoints/{id}/deliveries/evt_nope/retry"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (_, after) = app.read(&format!("/api/v1/audit?target={id}")).await;
    assert_eq!(before, after, "nothing sent again, nothing audited");
}

#[tokio::test]
async fn the_sandbox_may_deliver_to_this_machine_and_nowhere_else_private() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.sandbox = true).await;
    let (status, body) = app
        .admin(
            Method::POST,
            "/api/v1/endpoints",
            ADMIN_TOKEN,
            Some(json!({ "url": "http://127.0.0.1:9000/hooks" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .admin(
            Method::POST,
            "/api/v1/endpoints",
            ADMIN_TOKEN,
            Some(json!({ "url": "http://10.0.0.1/hooks" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}
