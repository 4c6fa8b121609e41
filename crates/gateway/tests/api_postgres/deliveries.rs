//! Webhook delivery shared by several instances on one PostgreSQL database: claims with leases,
//! so one event never goes to one endpoint twice at once, and the claims of an instance that
//! died are taken over when their lease runs out.

use std::time::Duration;

use loanwire_store::delivery::DispatchStep;
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::receiver::*;

/// Two instances on one database; a claim they make holds `lease_secs`.
async fn instance_pair(lease_secs: u64) -> (TestApp, TestApp) {
    let a = spawn_app_with(|c| {
        c.events.allowed_subnets = vec!["127.0.0.0/8".into()];
        c.events.webhook_schedule_secs = vec![0, 1, 1, 1, 1, 1];
        c.events.webhook_timeout_secs = 2;
        c.events.webhook_lease_secs = lease_secs;
    })
    .await;
    let b = a.another_instance().await;
    (a, b)
}

async fn subscribe(app: &TestApp, r: &Receiver) -> String {
    let (status, e) = app
        .admin(
            Method::POST,
            "/api/v1/endpoints",
            ADMIN_TOKEN,
            Some(json!({ "url": r.url() })),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    r.set_secret(e["secret"].as_str().unwrap());
    e["id"].as_str().unwrap().to_string()
}

/// Sends `n` process callbacks, alternating between the instances.
async fn send(a: &TestApp, b: &TestApp, tag: &str, n: usize) {
    for i in 0..n {
        let client = if i % 2 == 0 { a.client() } else { b.client() };
        let outcome = client
            .call(&callback(&format!("P-{tag}-{}", i % 10), "IN_PROCESSING"))
            .await
            .unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
    }
}

#[tokio::test]
async fn two_instances_never_send_one_event_to_one_endpoint_at_once_and_deliver_every_one() {
    crate::skip_unless_backend!();
    // A lease long enough that a slow machine never lets one run out mid-delivery: a
    // take-over (and its repeat) is the other test's.
    let (a, b) = instance_pair(30).await;
    let r = Receiver::start().await;
    r.set_plan(|_, _| Reply {
        delay: Duration::from_millis(40),
        ..Reply::status(200)
    });
    subscribe(&a, &r).await;
    // Ten processes; the first callback of each is applied, later ones are duplicates of state
    // (same status): ten events. Then new statuses: ten more.
    send(&a, &b, "two", 10).await;
    for i in 0..10 {
        let outcome = b
            .client()
            .call(&callback(&format!("P-two-{i}"), "SUCCESS"))
            .await
            .unwrap();
        assert!(outcome.is_accepted());
    }
    // The feed shows an event once every older transaction on the database has ended (its
    // frontier): another instance's bookkeeping may hold the last ones back a moment.
    let mut expected = 0;
    for _ in 0..100 {
        let (_, page) = a.read("/api/v1/events?limit=1000").await;
        expected = page["events"].as_array().unwrap().len();
        if expected >= 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(expected, 20);
    let all = within(30, || async { r.delivered_ids().len() == expected }).await;
    assert!(all, "delivered {} of {expected}", r.delivered_ids().len());
    assert_eq!(r.overlaps(), 0, "an event was in flight twice at once");
    assert_eq!(r.delivered().len(), expected, "each delivered once");
    assert_in_order_per_subject(&r.delivered());
}

#[tokio::test]
async fn the_claims_of_an_instance_that_died_are_taken_over_when_their_lease_runs_out() {
    crate::skip_unless_backend!();
    let (a, b) = instance_pair(3).await;
    let r = Receiver::start().await;
    // The receiver is away while the dead instance claims.
    r.set_plan(|_, _| Reply::status(503));
    let id = subscribe(&a, &r).await;
    // Stop the live instance's own dispatching for the claim: do it while they are both up,
    // by claiming first as an instance that then never answers — as a killed one would.
    send(&a, &b, "dead", 3).await;
    let store = a.store.clone();
    let mut claimed = 0;
    for _ in 0..100 {
        let events = store.events_for(0, None, 100).await.unwrap();
        let step = DispatchStep {
            owner: "killed-instance".into(),
            now_ms: loanwire_top::time::now_ms(),
            lease_ms: 3000,
            claims: vec![(id.clone(), 10)],
            fan_out: vec![(id.clone(), 0, events)],
            disable_after: 20,
            ..DispatchStep::default()
        };
        claimed += store.dispatch(step).await.unwrap().claimed.len();
        if claimed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(claimed > 0, "the dead instance claimed something");
    r.set_plan(|_, _| Reply::status(200));
    let taken_over = within(20, || async { r.delivered_ids().len() == 3 }).await;
    assert!(taken_over, "delivered {:?}", r.delivered_ids());
    assert_eq!(r.overlaps(), 0);
}
