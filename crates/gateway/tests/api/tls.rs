//! HTTPS (SPEC 5): with `tls_cert` and `tls_key` the gateway serves the SDK over TLS, and
//! nothing in the clear on the same port.

use std::io::{Read, Write};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::helpers::*;

/// A test CA and a certificate it signed for `localhost` and 127.0.0.1: (CA PEM, cert PEM,
/// key PEM).
fn test_pki() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "loanwire test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), key.serialize_pem())
}

#[tokio::test]
async fn the_sdk_calls_the_gateway_over_https_and_plain_http_gets_no_answer() {
    crate::skip_unless_backend!();
    let pki = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki();
    std::fs::write(pki.path().join("cert.pem"), cert).unwrap();
    std::fs::write(pki.path().join("key.pem"), key).unwrap();
    let app = spawn_app_with(|c| {
        c.tls_cert = Some(pki.path().join("cert.pem"));
        c.tls_key = Some(pki.path().join("key.pem"));
    })
    .await;
    let https = app.base.replace("http://", "https://");

    let client = loanwire_client::TopClient::builder(&https, &app.app_key, &app.secret)
        .trust_roots_pem(ca.as_bytes())
        .retry(loanwire_client::RetryPolicy::none())
        .format(sdk_format())
        .build()
        .unwrap();
    let outcome = client
        .call(&callback("P-tls", "IN_PROCESSING"))
        .await
        .unwrap();
    assert!(outcome.is_accepted(), "{outcome:?}");
    let key = loanwire_domain::process::ProcessKey {
        channel_id: "wzzx".into(),
        process_type: "CREDIT".into(),
        process_no: "P-tls".into(),
    };
    let stored = app
        .store
        .process_view(&key)
        .await
        .unwrap()
        .expect("applied");
    assert_eq!(stored.status, "IN_PROCESSING");

    // A client that does not trust the CA is refused by its own TLS check.
    let untrusting = loanwire_client::TopClient::builder(&https, &app.app_key, &app.secret)
        .retry(loanwire_client::RetryPolicy::none())
        .build()
        .unwrap();
    assert!(untrusting
        .call(&callback("P-tls-2", "IN_PROCESSING"))
        .await
        .is_err());

    // Plain HTTP on the TLS port: no HTTP answer, and nothing applied.
    let addr = app.base.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let _ = sock.read_to_end(&mut got);
        got
    })
    .await
    .unwrap();
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_missing_or_mismatched_tls_file_stops_the_start_with_its_name() {
    crate::skip_unless_backend!();
    let pki = tempfile::tempdir().unwrap();
    let (_, cert, _) = test_pki();
    let (_, _, other_key) = test_pki();
    std::fs::write(pki.path().join("cert.pem"), cert).unwrap();
    std::fs::write(pki.path().join("other.pem"), other_key).unwrap();
    for (cert, key, says) in [
        ("cert.pem", "missing.pem", "missing.pem"),
        ("cert.pem", "other.pem", "do not make a server identity"),
        ("other.pem", "other.pem", "no PEM certificate"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir);
        config.tls_cert = Some(pki.path().join(cert));
        config.tls_key = Some(pki.path().join(key));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e = loanwire_gateway::Application::build(config, listener)
            .await
            .err()
            .expect("the start is refused");
        assert!(e.to_string().contains(says), "{cert}/{key}: {e}");
    }
}
