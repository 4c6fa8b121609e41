//! The ceiling: the gateway's HTTP stack (tokio, hyper through axum, the same route) reading
//! the body and answering a canned success envelope, with no verification and no storage. What
//! the load generator gets from it is the most any gateway on this stack can do here.

use axum::body::Bytes;
use axum::http::header;
use axum::routing::any;
use axum::Router;

const CANNED: &str = r#"{"alibaba_finance_xfd_loan_change_notify_response":{"result":{"response_code":"SUCCESS","response_message":"SUCCESS","trace_id":"0","success":true},"request_id":"0"}}"#;

pub fn router() -> Router {
    Router::new().route(
        loanwire_top::ROUTER_PATH,
        any(|body: Bytes| async move {
            std::hint::black_box(body);
            (
                [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
                CANNED,
            )
        }),
    )
}

/// Serves the ceiling on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}
