//! Reading a call's parameters from the query string and an urlencoded, multipart or other
//! body: never a panic, and every failure is a code-41 TOP error.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use loanwire_gateway::rest::request::{read, Limits};

/// The multipart boundary of inputs whose first byte asks for multipart.
const BOUNDARY: &str = "XyZ";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

// The input: one byte choosing the content type (form, multipart, none, text/plain), then the
// query string, a NUL, and the body — so that seeds can be written by hand.
fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let uri: Uri = format!("/router/rest?{}", String::from_utf8_lossy(query))
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/router/rest"));
    let mut headers = HeaderMap::new();
    let ct = match kind % 4 {
        0 => Some("application/x-www-form-urlencoded;charset=utf-8".to_string()),
        1 => Some(format!("multipart/form-data; boundary={BOUNDARY}")),
        2 => None,
        _ => Some("text/plain".to_string()),
    };
    if let Some(v) = ct.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    let limits = Limits {
        max_body: 4096,
        max_params: 16,
        body_timeout: Duration::from_secs(5),
    };
    let result = runtime().block_on(read(&uri, &headers, Body::from(body.to_vec()), limits));
    match result {
        Ok(received) => assert!(received.params.iter().count() <= limits.max_params),
        Err(unread) => assert_eq!(unread.error.code, 41, "{:?}", unread.error),
    }
});
