//! A burst of bad requests gets TOP errors and no panic, while valid calls keep working.

use futures_util::future::join_all;
use loanwire_top::{Format, SignMethod};

use crate::helpers::*;

fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_malformed_requests_gets_top_errors_while_valid_calls_succeed() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.max_body_bytes = 16 * 1024).await;
    let (sys, _) = app.signed(CALLBACK, &[], SignMethod::HmacSha256, Format::Json, |_| {});
    let signed_query =
        loanwire_top::encode::form_encode(sys.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let stale_ts = loanwire_top::TopDateTime::from_utc(
        loanwire_top::TopDateTime::now().utc() - chrono::Duration::hours(2),
    )
    .format();

    let mut bad: Vec<(String, &'static str, Vec<u8>)> = Vec::new();
    for seed in 0..40u64 {
        bad.push((
            "".into(),
            "application/x-www-form-urlencoded",
            pseudo_random_bytes(seed, 1 + (seed as usize * 37) % 3000),
        ));
        bad.push((
            signed_query.clone(),
            "multipart/form-data; boundary=x",
            pseudo_random_bytes(seed + 1000, 500),
        ));
    }
    bad.push((
        signed_query.clone(),
        "application/x-www-form-urlencoded",
        b"user=3&infos=%7B%22user_id%22%3A".to_vec(),
    ));
    bad.push((
        signed_query.clone(),
        "application/x-www-form-urlencoded",
        b"user=3&infos={broken json".to_vec(),
    ));
    bad.push((
        signed_query.clone(),
        "application/x-www-form-urlencoded",
        b"user=3&infos=%7B%22user_id%22%3A%22x%22%7D".to_vec(),
    ));
    bad.push((
        signed_query.clone(),
        "application/x-www-form-urlencoded",
        format!("user={}", "9".repeat(100_000)).into_bytes(),
    ));
    bad.push((
        signed_query.clone(),
        "application/x-www-form-urlencoded",
        b"%%%&&&===".to_vec(),
    ));
    bad.push((
        format!(
            "method={CALLBACK}&app_key={}&timestamp=2020-01-01+00:00:00&v=2.0&sign=ABC&format=json",
            app.app_key
        ),
        "",
        Vec::new(),
    ));
    bad.push((
        format!(
            "method={CALLBACK}&app_key={}&timestamp={}&v=2.0&sign=ABC&format=json",
            app.app_key,
            stale_ts.replace(' ', "+")
        ),
        "",
        Vec::new(),
    ));

    let bad_calls = join_all(bad.into_iter().map(|(q, ct, body)| {
        let app = &app;
        async move { app.post_bytes(&q, ct, body).await }
    }));
    let good_calls = join_all((0..20).map(|i| {
        let c = app.client();
        async move {
            c.call(&callback(&format!("P-ok-{i}"), "IN_PROCESSING"))
                .await
        }
    }));
    let (bad_answers, good_answers) = tokio::join!(bad_calls, good_calls);

    for raw in &bad_answers {
        assert_eq!(raw.status, 200, "{}", raw.body);
        let format = if raw.content_type.starts_with("application/json") {
            Format::Json
        } else {
            Format::Xml
        };
        let e = raw.error(format);
        assert!(e.code >= 20 && e.code <= 50, "unexpected code {e:?}");
    }
    for answer in good_answers {
        assert!(answer.unwrap().is_accepted());
    }
    let (status, _) = app.read("/api/v1/processes/wzzx/CREDIT/P-ok-19").await;
    assert_eq!(status, 200);
}
