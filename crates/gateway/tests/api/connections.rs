//! What a slow, idle or hostile client can hold: every stage of a connection is timed, the
//! number of connections is capped, and a normal call is still served meanwhile.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Reads until the server closes the connection; what it sent, and how long that took. Fails
/// the test when the connection is still open after `limit`.
async fn read_until_closed(sock: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            sock.read(&mut buf),
        )
        .await
        {
            Err(_) => panic!("the connection was still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    let (_, took) = read_until_closed(&mut sock, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn headers_that_trickle_in_are_cut_off_at_the_header_timeout() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    sock.write_all(b"POST /router/rest HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickle = async {
        // A header line every 200 ms, for up to 10 s: far longer than the timeout allows.
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if sock
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
        }
        false
    };
    let cut_off = tokio::time::timeout(Duration::from_secs(10), trickle).await;
    assert_eq!(
        cut_off,
        Ok(true),
        "the server kept reading a trickling header"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.header_timeout_secs = 1).await;
    let mut sock = TcpStream::connect(addr(&app)).await.unwrap();
    let host = addr(&app);
    sock.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (answer, took) = read_until_closed(&mut sock, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn a_normal_call_is_served_promptly_while_hundreds_of_slow_connections_are_open() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(b"POST /router/rest HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(s);
    }
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        app.client().call(&callback("P-busy", "IN_PROCESSING")),
    )
    .await
    .expect("answered within 5 s")
    .unwrap();
    assert!(outcome.is_accepted());
    drop(idle);
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.max_connections = 2).await;
    let first = TcpStream::connect(addr(&app)).await.unwrap();
    let _second = TcpStream::connect(addr(&app)).await.unwrap();
    let host = addr(&app);
    let health = |sock: TcpStream| {
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        async move {
            let mut sock = sock;
            sock.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            sock.read_to_string(&mut answer).await.map(|_| answer)
        }
    };
    let third = TcpStream::connect(addr(&app)).await.unwrap();
    let waiting = tokio::spawn(health(third));
    // Not served while two connections hold both slots.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served over the cap of 2"
    );
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot was free")
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Sends `head` on a fresh connection; the whole answer, once the server closes.
async fn raw_exchange(app: &TestApp, head: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr(app)).await.unwrap();
    sock.write_all(head).await.unwrap();
    read_until_closed(&mut sock, Duration::from_secs(5)).await.0
}

/// An answer that is HTTP 200 with a code-41 TOP error in XML that a strict parser reads.
fn assert_top_41(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("a head") + 4..];
    let doc = roxmltree::Document::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let code = doc
        .descendants()
        .find(|n| n.has_tag_name("code"))
        .and_then(|n| n.text());
    assert_eq!(code, Some("41"), "{body}");
}

#[tokio::test]
async fn requests_hyper_cannot_parse_still_get_a_top_envelope_with_http_200() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let long_query = format!(
        "GET /router/rest?method=x&pad={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_top_41(&raw_exchange(&app, long_query.as_bytes()).await);
    let mut many_headers = String::from("POST /router/rest HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        many_headers.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    many_headers.push_str("\r\n");
    assert_top_41(&raw_exchange(&app, many_headers.as_bytes()).await);
    assert_top_41(&raw_exchange(&app, b"HELLO \x01 WORLD\r\n\r\n").await);
    // The gateway's own error answers are left alone.
    let not_found = raw_exchange(
        &app,
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
}
