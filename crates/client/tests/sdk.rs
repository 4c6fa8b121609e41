//! The SDK against a real HTTP server on loopback: what it sends, and how it reacts to each
//! kind of answer.

mod support;

use std::time::{Duration, Instant};

use loanwire_api::idle_loan_callback::IdleLoanCallbackInfo;
use loanwire_api::{
    IdleLoanCallbackRequest, XfdLoanChangeExternalRequest, XfdLoanChangeNotifyRequest,
};
use loanwire_client::{ClientError, Outcome, RetryPolicy, TopClient};
use loanwire_top::encode::form_decode;
use loanwire_top::{sign, Format, SignMethod, TopDateTime};
use support::{Action, ScriptedServer};

const SECRET: &str = "s3cr3t-秘密";

const CALLBACK_OK: &str = r#"{"alibaba_idle_interact_loan_callback_response":{"idle_point_result":{"success":true,"data":"true"},"request_id":"rid-1"}}"#;
const ISP_ERROR: &str = r#"{"error_response":{"code":15,"msg":"Remote service error","sub_code":"isp.service-unavailable","sub_msg":"database unavailable","request_id":"rid-e"}}"#;
const ISV_ERROR: &str = r#"{"error_response":{"code":50,"msg":"Remote service error","sub_code":"isv.invalid-parameter","sub_msg":"非法参数: infos.status","request_id":"rid-v"}}"#;

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(10),
    }
}

fn client(server: &ScriptedServer) -> TopClient {
    TopClient::builder(server.url(), "app-1", SECRET)
        .retry(fast_retries(3))
        .build()
        .unwrap()
}

fn callback() -> IdleLoanCallbackRequest {
    IdleLoanCallbackRequest {
        user: "张三/李四".into(),
        infos: IdleLoanCallbackInfo {
            channel_id: "wzzx".into(),
            complete_time: None,
            fund_products: Some(vec!["资方A".into(), "b/c".into()]),
            process_no: "P/001".into(),
            status: "IN_PROCESSING".into(),
            submit_time: Some(TopDateTime::parse("2025-01-17 16:00:00").unwrap()),
            process_type: "CREDIT".into(),
            user_id: 9_007_199_254_740_993,
        },
    }
}

#[tokio::test]
async fn system_parameters_go_in_the_query_and_api_parameters_in_the_body() {
    let server = ScriptedServer::start(vec![Action::json(CALLBACK_OK)]).await;
    let outcome = client(&server).call(&callback()).await.unwrap();
    assert!(outcome.is_accepted());
    assert_eq!(outcome.reply().request_id.as_deref(), Some("rid-1"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert!(r.request_line.starts_with("POST "), "{}", r.request_line);
    assert_eq!(r.path(), "/router/rest");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded;charset=utf-8")
    );

    let query = form_decode(r.query().as_bytes()).unwrap();
    let body = form_decode(&r.body).unwrap();
    let qkeys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "method",
        "app_key",
        "sign_method",
        "timestamp",
        "v",
        "format",
        "sign",
    ] {
        assert!(qkeys.contains(&k), "query lacks {k}: {qkeys:?}");
    }
    let bkeys: Vec<&str> = body.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(bkeys, vec!["infos", "user"]);
    let get =
        |set: &[(String, String)], k: &str| set.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert_eq!(get(&query, "method"), "alibaba.idle.interact.loan.callback");
    assert_eq!(get(&query, "sign_method"), "hmac-sha256");
    assert_eq!(get(&query, "v"), "2.0");
    assert_eq!(get(&query, "format"), "json");
    assert_eq!(get(&body, "user"), "张三/李四");

    // Chinese as UTF-8 percent escapes, `/` escaped in the form and `\/` inside the JSON.
    let raw_body = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        raw_body.contains("user=%E5%BC%A0%E4%B8%89%2F%E6%9D%8E%E5%9B%9B"),
        "{raw_body}"
    );
    assert!(raw_body.contains("P%5C%2F001"), "{raw_body}");
    assert_eq!(
        get(&body, "infos"),
        r#"{"channel_id":"wzzx","fund_products":["资方A","b\/c"],"process_no":"P\/001","status":"IN_PROCESSING","submit_time":"2025-01-17 16:00:00","type":"CREDIT","user_id":9007199254740993}"#
    );

    // The sign verifies over everything that was sent, query and body together.
    let all: Vec<(&str, &str)> = query
        .iter()
        .chain(body.iter())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expected = sign::sign(all, SECRET.as_bytes(), SignMethod::HmacSha256);
    assert_eq!(get(&query, "sign"), expected.sign);

    // The timestamp is GMT+8 and current.
    let ts = TopDateTime::parse(&get(&query, "timestamp")).unwrap();
    assert!((ts.utc() - TopDateTime::now().utc()).num_seconds().abs() < 5);
}

#[tokio::test]
async fn every_sign_method_produces_a_verifiable_sign() {
    for method in [SignMethod::Md5, SignMethod::Hmac, SignMethod::HmacSha256] {
        let server = ScriptedServer::start(vec![Action::json(CALLBACK_OK)]).await;
        let c = TopClient::builder(server.url(), "app-1", SECRET)
            .sign_method(method)
            .build()
            .unwrap();
        let _ = c.call(&callback()).await.unwrap();
        let r = &server.requests()[0];
        let query = form_decode(r.query().as_bytes()).unwrap();
        let body = form_decode(&r.body).unwrap();
        let sent_sign = query.iter().find(|(k, _)| k == "sign").unwrap().1.clone();
        let all: Vec<(&str, &str)> = query
            .iter()
            .chain(body.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            sent_sign,
            sign::sign(all, SECRET.as_bytes(), method).sign,
            "{method}"
        );
        assert!(r.query().contains(&format!("sign_method={method}")));
    }
}

#[tokio::test]
async fn an_isp_error_is_retried_until_success() {
    let server =
        ScriptedServer::start(vec![Action::json(ISP_ERROR), Action::json(CALLBACK_OK)]).await;
    let resp = client(&server)
        .execute("alibaba.idle.interact.loan.callback", [("user", "3")])
        .await
        .unwrap();
    assert_eq!(resp.attempts, 2);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let server = ScriptedServer::start(vec![Action::Drop, Action::json(CALLBACK_OK)]).await;
    let resp = client(&server)
        .execute("alibaba.idle.interact.loan.callback", [("user", "3")])
        .await
        .unwrap();
    assert_eq!(resp.attempts, 2);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn an_isv_error_is_not_retried() {
    let server =
        ScriptedServer::start(vec![Action::json(ISV_ERROR), Action::json(CALLBACK_OK)]).await;
    let err = client(&server)
        .execute("alibaba.idle.interact.loan.callback", [("user", "3")])
        .await
        .unwrap_err();
    let top = err.top_error().expect("a TOP error");
    assert_eq!(top.code, 50);
    assert_eq!(top.sub_code.as_deref(), Some("isv.invalid-parameter"));
    assert_eq!(top.request_id.as_deref(), Some("rid-v"));
    assert!(!err.is_retryable());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_business_refusal_is_an_outcome_and_not_retried() {
    let refused = r#"{"alibaba_finance_xfd_loan_change_notify_response":{"result":{"response_code":"IDEMPOTENCY_CONFLICT","response_message":"request_id reused","trace_id":"t","success":false},"request_id":"r"}}"#;
    let server = ScriptedServer::start(vec![Action::json(refused), Action::json(refused)]).await;
    let req = XfdLoanChangeNotifyRequest {
        param_xfd_loan_change_external_request: XfdLoanChangeExternalRequest {
            after_status: "OVERDUE".into(),
            before_status: "NEW".into(),
            change_time: TopDateTime::parse("2024-01-01 00:00:00").unwrap(),
            customer_id: None,
            institution_loan_no: None,
            loan_apply_no: "FI1".into(),
            request_id: "r1".into(),
        },
    };
    let outcome = client(&server).call(&req).await.unwrap();
    match &outcome {
        Outcome::Refused { failure, reply } => {
            assert_eq!(failure.code, "IDEMPOTENCY_CONFLICT");
            assert!(!reply.response.result.success);
        }
        Outcome::Accepted(_) => panic!("a refusal was taken for acceptance"),
    }
    assert!(matches!(
        outcome.into_result(),
        Err(ClientError::Business(_))
    ));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn retries_stop_at_the_attempt_bound() {
    let server = ScriptedServer::start(vec![Action::json(ISP_ERROR); 10]).await;
    let err = client(&server)
        .execute("m", [("a", "b")])
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn retries_stop_at_the_time_bound() {
    let server = ScriptedServer::start(vec![Action::json(ISP_ERROR); 50]).await;
    let c = TopClient::builder(server.url(), "app-1", SECRET)
        .retry(RetryPolicy {
            max_attempts: 50,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(100),
            max_elapsed: Duration::from_millis(300),
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let _ = c.execute("m", [("a", "b")]).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let n = server.requests().len();
    assert!((2..50).contains(&n), "{n} attempts within a 300 ms budget");
}

#[tokio::test]
async fn the_read_timeout_is_honoured() {
    let server = ScriptedServer::start(vec![Action::Late(
        Duration::from_secs(5),
        CALLBACK_OK.into(),
    )])
    .await;
    let c = TopClient::builder(server.url(), "app-1", SECRET)
        .read_timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = c.execute("m", [("a", "b")]).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, ClientError::Transport { timeout: true, .. }),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = TopClient::builder(format!("http://127.0.0.1:{port}"), "app-1", SECRET)
        .retry(fast_retries(2))
        .build()
        .unwrap();
    let err = c.execute("m", [("a", "b")]).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Transport { timeout: false, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn xml_answers_are_parsed_when_xml_is_asked_for() {
    let xml = r#"<?xml version="1.0" encoding="utf-8" ?><alibaba_idle_interact_loan_callback_response><idle_point_result><success>false</success><data>false</data><biz_error><err_code>USER_MISMATCH</err_code><err_msg>绑定用户不同</err_msg></biz_error></idle_point_result><request_id>x1</request_id></alibaba_idle_interact_loan_callback_response>"#;
    let server = ScriptedServer::start(vec![Action::xml(xml)]).await;
    let c = TopClient::builder(server.url(), "app-1", SECRET)
        .format(Format::Xml)
        .build()
        .unwrap();
    let outcome = c.call(&callback()).await.unwrap();
    assert_eq!(
        outcome.failure().map(|f| f.code.as_str()),
        Some("USER_MISMATCH")
    );
    assert_eq!(outcome.reply().request_id.as_deref(), Some("x1"));
    assert!(server.requests()[0].query().contains("format=xml"));
}

#[tokio::test]
async fn gzip_answers_are_decompressed() {
    let server = ScriptedServer::start(vec![Action::AnswerGzip {
        body: CALLBACK_OK.into(),
    }])
    .await;
    let resp = client(&server)
        .execute("alibaba.idle.interact.loan.callback", [("user", "3")])
        .await
        .unwrap();
    assert_eq!(resp.request_id.as_deref(), Some("rid-1"));
    assert!(server.requests()[0]
        .header("accept-encoding")
        .unwrap_or("")
        .contains("gzip"));
}

#[tokio::test]
async fn an_undecodable_answer_keeps_the_raw_body() {
    let server = ScriptedServer::start(vec![Action::json("<html>proxy error</html>")]).await;
    let err = client(&server)
        .execute("m", [("a", "b")])
        .await
        .unwrap_err();
    match err {
        ClientError::Decode { raw, .. } => assert_eq!(raw, "<html>proxy error</html>"),
        other => panic!("expected Decode, got {other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        1,
        "undecodable answers are not retried"
    );
}

#[tokio::test]
async fn a_non_200_status_is_a_transport_level_failure() {
    let server = ScriptedServer::start(vec![
        Action::Answer {
            status: 502,
            content_type: "text/html",
            body: "bad gateway".into(),
        },
        Action::json(CALLBACK_OK),
    ])
    .await;
    let resp = client(&server).execute("m", [("a", "b")]).await.unwrap();
    assert_eq!(resp.attempts, 2, "a 502 is retried");
}

#[tokio::test]
async fn a_bare_host_url_means_the_router_path() {
    let server = ScriptedServer::start(vec![Action::json(CALLBACK_OK)]).await;
    let c = TopClient::builder(format!("http://{}", server.addr), "a", "s")
        .build()
        .unwrap();
    assert_eq!(c.url().path(), "/router/rest");
    c.execute("m", [("a", "b")]).await.unwrap();
    assert_eq!(server.requests()[0].path(), "/router/rest");
}

#[test]
fn bad_configuration_is_refused_at_build_time() {
    assert!(matches!(
        TopClient::builder("ftp://x", "a", "s").build(),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        TopClient::builder("http://x", "", "s").build(),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        TopClient::builder("not a url", "a", "s").build(),
        Err(ClientError::Config(_))
    ));
}
