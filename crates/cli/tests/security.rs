//! SPEC 5 from the command line: `keys rotate` beside a running gateway, operator tokens made
//! with `token create` and their roles, and `loanwire audit`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;

#[test]
fn keys_rotate_while_calls_flow_loses_none_and_every_secret_opens_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A short app cache: the gateway reads the app, sealed under whichever key, all the time.
    let g = Arc::new(start_with(dir.path(), &[("LOANWIRE_APP_CACHE_MS", "20")]));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let caller = {
        let (g, stop, sent) = (g.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            // Bounded: at most 2000 calls, whatever happens to the flag.
            for i in 0..2000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (code, out) = call_as(&g, &g.app_key, &g.secret, &format!("P-rot-{i}"));
                if code != 0 {
                    failures.push(out);
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
            failures
        })
    };
    let wait_for = |n: usize| {
        for _ in 0..3000 {
            if sent.load(Ordering::SeqCst) >= n || caller.is_finished() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the calls stopped flowing");
    };
    wait_for(3);

    let (code, out, err) = on_db(dir.path(), &["keys", "rotate"]);
    assert_eq!(code, 0, "{out}{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["sealed"], 1, "{answer}");
    assert_eq!(answer["keys_held"], 2, "{answer}");
    let key_file = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    assert_eq!(key_file.lines().filter(|l| !l.starts_with('#')).count(), 2);

    // An app made after the rotation is sealed under the new key only: the running gateway
    // must follow the key file to open it.
    let (code, out, err) = on_db(dir.path(), &["app", "create", "--name", "after rotation"]);
    assert_eq!(code, 0, "{out}{err}");
    let made: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (key, secret) = (
        made["app_key"].as_str().unwrap(),
        made["secret"].as_str().unwrap(),
    );
    let (code, out) = call_as(&g, key, secret, "P-new-app");
    assert_eq!(code, 0, "{out}");

    let at_rotation = sent.load(Ordering::SeqCst);
    wait_for(at_rotation + 10);
    stop.store(true, Ordering::SeqCst);
    let failures = caller.join().unwrap();
    assert!(
        failures.is_empty(),
        "calls lost to the rotation: {failures:?}"
    );

    // Restarted, the gateway opens every secret with the new key file.
    drop(Arc::into_inner(g).expect("the caller is done"));
    let g = start(dir.path());
    let (code, out) = call_as(&g, key, secret, "P-after-restart");
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = run(&g, &["audit", "--target", "apps"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"keys.rotate\""), "{out}");
}

#[test]
fn tokens_made_with_the_cli_open_the_api_by_role_until_revoked_and_the_audit_shows_them() {
    let dir = tempfile::tempdir().unwrap();
    let g = start(dir.path());
    let token = |name: &str, role: &str| {
        let (code, out, err) = on_db(
            dir.path(),
            &["token", "create", "--name", name, "--role", role],
        );
        assert_eq!(code, 0, "{out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let viewer = token("grafana", "viewer");
    let (code, _, err) = on_db(
        dir.path(),
        &["token", "create", "--name", "grafana", "--role", "viewer"],
    );
    assert_ne!(code, 0, "a name in use is refused");
    assert!(err.contains("revoke it first"), "{err}");

    let read_with = |t: &str| {
        let out = bin()
            .args(["inbox", "--url", &g.url, "--token", t])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(read_with(&viewer).0, 0);

    let (code, out, _) = on_db(dir.path(), &["token", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("grafana") && !out.contains(&viewer[20..]),
        "no secret listed: {out}"
    );
    let store_bytes = std::fs::read(dir.path().join("loanwire.db")).unwrap();
    let secret_part = viewer.rsplit('_').next().unwrap();
    assert!(
        !store_bytes
            .windows(secret_part.len())
            .any(|w| w == secret_part.as_bytes()),
        "the token's secret is not stored"
    );

    let (code, out, err) = on_db(dir.path(), &["token", "revoke", "grafana"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, err) = read_with(&viewer);
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");

    let (code, out, err) = run(&g, &["audit", "--target", "grafana"]);
    assert_eq!(code, 0, "{err}");
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["token.revoke", "token.create"], "{out}");
}
