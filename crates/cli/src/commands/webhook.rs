//! `loanwire webhook listen`: a small receiver for trying deliveries locally. It verifies each
//! delivery's Standard Webhooks signature with the `standardwebhooks` library (an independent
//! implementation, not loanwire's signer) and prints the event, one JSON line each.

use std::process::ExitCode;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    command: WebhookCommand,
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Receive deliveries on http://HOST:PORT/ (any path), verify and print them.
    Listen {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The endpoint's signing secret (whsec_…), as `loanwire endpoint add` printed it.
        #[arg(long, env = "LOANWIRE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// The status to answer verified deliveries with (a 5xx or 410 shows retries and
        /// disabling at work).
        #[arg(long, default_value_t = 204)]
        status: u16,
        /// Wait this long before answering (past the gateway's timeout: a timed-out attempt).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

pub fn run(args: WebhookArgs) -> ExitCode {
    let WebhookCommand::Listen {
        port,
        host,
        secret,
        status,
        delay_ms,
    } = args.command;
    let verifier = match standardwebhooks::Webhook::new(&secret) {
        Ok(v) => std::sync::Arc::new(v),
        Err(e) => {
            eprintln!("error: --secret is not a Standard Webhooks secret (whsec_…): {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(answer) = StatusCode::from_u16(status) else {
        eprintln!("error: --status {status} is not an HTTP status");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {host}:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let receive = move |headers: HeaderMap, body: Bytes| {
            let verifier = verifier.clone();
            async move {
                if delay_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                }
                match verifier.verify(&body, &headers) {
                    Ok(()) => {
                        println!("{}", String::from_utf8_lossy(&body));
                        answer
                    }
                    Err(e) => {
                        let id = headers
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("?");
                        eprintln!("refused delivery {id}: the signature does not verify ({e})");
                        StatusCode::UNAUTHORIZED
                    }
                }
            }
        };
        let app = Router::new()
            .route("/", post(receive.clone()))
            .route("/{*path}", post(receive));
        eprintln!("listening on http://{host}:{port}/ for signed deliveries");
        match axum::serve(listener, app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
