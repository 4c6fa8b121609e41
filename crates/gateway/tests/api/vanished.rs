//! The embedded database removed or replaced under a running gateway: it stops taking calls
//! (code 15, `/readyz` 503) instead of acknowledging them into files nobody will find. In the
//! SQLite suite only: PostgreSQL's files are the server's.

use loanwire_client::ClientError;

use crate::helpers::*;

async fn refused_with_15(app: &TestApp, no: &str) -> bool {
    match app.client().call(&callback(no, "IN_PROCESSING")).await {
        Err(ClientError::Top { error, .. }) => {
            error.code == 15 && error.sub_code.as_deref() == Some("isp.service-unavailable")
        }
        _ => false,
    }
}

async fn ready(app: &TestApp) -> u16 {
    reqwest::get(format!("{}/readyz", app.base))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A gateway that has applied a call.
async fn serving() -> TestApp {
    let app = spawn_app().await;
    let first = app.client().call(&callback("P-v1", "IN_PROCESSING")).await;
    assert!(first.unwrap().is_accepted());
    app
}

#[tokio::test]
async fn a_removed_data_directory_stops_the_gateway_taking_calls() {
    let app = serving().await;
    std::fs::remove_dir_all(&app.config.data_dir).unwrap();
    // The very next commit finds its WAL unlinked: it is refused, not acknowledged.
    assert!(
        refused_with_15(&app, "P-v2").await,
        "a call was acknowledged into removed files"
    );
    assert_eq!(ready(&app).await, 503);
    assert!(
        refused_with_15(&app, "P-v3").await,
        "later calls are refused too"
    );
}

#[tokio::test]
async fn a_replaced_database_file_stops_the_gateway_taking_calls() {
    let app = serving().await;
    let db = app.config.data_dir.join("loanwire.db");
    let other = app.config.data_dir.join("other.db");
    std::fs::write(&other, b"").unwrap();
    std::fs::rename(&other, &db).unwrap();
    let stopped = eventually(|| async { ready(&app).await == 503 }).await;
    assert!(
        stopped,
        "/readyz stayed ready with its database file replaced"
    );
    assert!(refused_with_15(&app, "P-r2").await);
}
