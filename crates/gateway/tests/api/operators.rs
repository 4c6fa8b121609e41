//! Operator tokens, roles and the admin audit (SPEC 5), through the admin API.

use loanwire_gateway::operators::{self, cli_actor};
use loanwire_store::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

async fn token(app: &TestApp, name: &str, role: Role) -> String {
    operators::create(app.store.as_ref(), name, role, &cli_actor())
        .await
        .unwrap()
        .1
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_create_an_app_and_an_operator_can() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let viewer = token(&app, "dashboards", Role::Viewer).await;
    let operator = token(&app, "ops-alice", Role::Operator).await;

    let (status, list) = app.admin(Method::GET, "/api/v1/apps", &viewer, None).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.to_string().contains(&app.app_key) && !list.to_string().contains("secret"));

    let new = json!({ "name": "Bank B", "rate_limit": 50 });
    let (status, body) = app
        .admin(Method::POST, "/api/v1/apps", &viewer, Some(new.clone()))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("operator"),
        "{body}"
    );
    assert_eq!(app.store.apps().await.unwrap().len(), 1, "nothing created");

    let (status, created) = app
        .admin(Method::POST, "/api/v1/apps", &operator, Some(new))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["app_key"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32);

    // The app made over HTTP takes signed calls.
    let made = app.store.app(&key).await.unwrap().unwrap();
    assert_eq!(made.secret, secret);
    let outcome = app
        .client_for(&made)
        .call(&callback("P-ops-1", "IN_PROCESSING"))
        .await
        .unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");

    // Reading it back never shows the secret.
    let (status, one) = app
        .admin(Method::GET, &format!("/api/v1/apps/{key}"), &viewer, None)
        .await;
    assert_eq!(status, 200);
    assert!(one.get("secret").is_none(), "{one}");
}

#[tokio::test]
async fn every_admin_change_is_in_the_audit_with_who_and_from_where() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let operator = token(&app, "ops-bob", Role::Operator).await;
    let key = app.app_key.clone();
    for (path, body) in [
        (format!("/api/v1/apps/{key}/disable"), None),
        (format!("/api/v1/apps/{key}/enable"), None),
        (
            format!("/api/v1/apps/{key}/rotate-secret"),
            Some(json!({ "grace_secs": 60 })),
        ),
    ] {
        let (status, answer) = app.admin(Method::POST, &path, &operator, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, missing) = app
        .admin(
            Method::POST,
            "/api/v1/apps/99999999/disable",
            &operator,
            None,
        )
        .await;
    assert_eq!(status, 404, "{missing}");
    app.store
        .revoke_token("ops-bob", &cli_actor())
        .await
        .unwrap();

    let (status, page) = app.read("/api/v1/audit?limit=20").await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["source"].as_str().unwrap(),
            )
        })
        .collect();
    let cli = cli_actor().name;
    assert_eq!(
        seen,
        vec![
            ("token.revoke", "ops-bob", cli.as_str(), "cli"),
            ("app.rotate_secret", key.as_str(), "ops-bob", "127.0.0.1"),
            ("app.enable", key.as_str(), "ops-bob", "127.0.0.1"),
            ("app.disable", key.as_str(), "ops-bob", "127.0.0.1"),
            ("token.create", "ops-bob", cli.as_str(), "cli"),
            ("app.create", key.as_str(), cli.as_str(), "cli"),
        ],
        "{page}"
    );
    assert_eq!(entries[1]["detail"]["grace_secs"], 60);
    assert!(
        !page.to_string().contains(&app.secret),
        "no secret in the audit"
    );

    let (_, one_app) = app
        .read(&format!("/api/v1/audit?target={key}&limit=2"))
        .await;
    assert_eq!(one_app["entries"].as_array().unwrap().len(), 2);
    let next = one_app["next_before"].as_i64().expect("a next page");
    let (_, rest) = app
        .read(&format!("/api/v1/audit?target={key}&before={next}"))
        .await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 2, "{rest}");
}

#[tokio::test]
async fn a_revoked_token_is_refused_from_its_next_request() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let t = token(&app, "ci", Role::Viewer).await;
    let (status, _) = app.admin(Method::GET, "/api/v1/inbox", &t, None).await;
    assert_eq!(status, 200);
    app.store.revoke_token("ci", &cli_actor()).await.unwrap();
    let (status, body) = app.admin(Method::GET, "/api/v1/inbox", &t, None).await;
    assert_eq!(status, 401, "{body}");

    // A token whose secret part is wrong, or that is not a token at all, is refused alike.
    let other = token(&app, "ci", Role::Operator).await;
    let forged = format!("{}x", &other[..other.len() - 1]);
    for bad in [
        forged.as_str(),
        "lwt_zz_zz",
        "lwt_",
        "Bearer",
        &"x".repeat(5000),
    ] {
        let (status, body) = app.admin(Method::GET, "/api/v1/apps", bad, None).await;
        assert_eq!(status, 401, "{bad}: {body}");
    }
    let (status, _) = app.admin(Method::GET, "/api/v1/apps", &other, None).await;
    assert_eq!(status, 200, "the new token named ci works");
}

#[tokio::test]
async fn admin_changes_with_bad_bodies_get_clear_errors_and_change_nothing() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    for (body, why) in [
        (json!({ "name": "" }), "name"),
        (
            json!({ "name": "x", "methods": ["no.such.method"] }),
            "unknown method",
        ),
        (json!({ "name": "x", "colour": "red" }), "colour"),
        (
            json!({ "name": "x", "app_key": app.app_key }),
            "already exists",
        ),
    ] {
        let (status, answer) = app
            .admin(
                Method::POST,
                "/api/v1/apps",
                ADMIN_TOKEN,
                Some(body.clone()),
            )
            .await;
        assert!(status == 400 || status == 409, "{body}: {status} {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{body}: {answer}");
    }
    let path = format!("/api/v1/apps/{}/rotate-secret", app.app_key);
    let (status, answer) = app
        .admin(
            Method::POST,
            &path,
            ADMIN_TOKEN,
            Some(json!({ "grace_secs": 99_999_999 })),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(app.store.apps().await.unwrap().len(), 1);
    let (_, audit) = app.read("/api/v1/audit").await;
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        1,
        "only the first app: {audit}"
    );
}
