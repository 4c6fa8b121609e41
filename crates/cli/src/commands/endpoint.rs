//! `loanwire endpoint …`: webhook endpoints and their deliveries, on the gateway's database
//! (SPEC 3.3). A running gateway picks changes up within a second.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use loanwire_gateway::delivery::endpoints::{self, describe, NewEndpoint};
use loanwire_gateway::delivery::ssrf::Guard;
use loanwire_gateway::operators::cli_actor;
use loanwire_store::delivery::DeliveryStatus;
use loanwire_store::StoreError;
use serde_json::json;

use super::database::{with_store, DatabaseArgs};

#[derive(Args)]
pub struct EndpointArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: EndpointCommand,
}

#[derive(Subcommand)]
enum EndpointCommand {
    /// Subscribe a URL; prints the endpoint id and its signing secret (shown once).
    Add {
        url: String,
        /// Event types (comma-separated): loan.changed, process.changed; every type when left out.
        #[arg(long, value_delimiter = ',')]
        types: Option<Vec<String>>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the endpoints (without secrets).
    List,
    /// Stop delivering; events wait.
    Disable { id: String },
    /// Deliver again, what waited first (failed deliveries included).
    Enable { id: String },
    /// A new signing secret; the old one signs too for the grace period.
    RotateSecret {
        id: String,
        #[arg(long, default_value_t = 86_400)]
        grace_secs: u64,
    },
    /// Remove an endpoint with its deliveries.
    Remove { id: String },
    /// The delivery log, newest first.
    Deliveries {
        id: String,
        /// pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One delivery with every attempt.
    Delivery { id: String, event_id: String },
    /// Send the failed deliveries made since TIME (RFC 3339) again.
    Recover {
        id: String,
        #[arg(long)]
        since: String,
    },
    /// Send one event's delivery again, whatever its status.
    Retry { id: String, event_id: String },
}

fn invalid(m: impl Into<String>) -> StoreError {
    StoreError::Invalid(m.into())
}

pub fn run(args: EndpointArgs) -> ExitCode {
    let config = match args.db.config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let guard = match config.events.allowed_nets() {
        Ok(nets) => Guard::new(nets),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    with_store(config, |store| async move {
        let store = store.as_ref();
        let by = cli_actor();
        match args.command {
            EndpointCommand::Add {
                url,
                types,
                description,
            } => {
                let spec = NewEndpoint {
                    url,
                    types,
                    description,
                };
                endpoints::add(store, &guard, spec, &by)
                    .await
                    .map(|e| describe(&e, true))
            }
            EndpointCommand::List => {
                let list = store.endpoints().await?;
                Ok(json!(list
                    .iter()
                    .map(|e| describe(e, false))
                    .collect::<Vec<_>>()))
            }
            EndpointCommand::Disable { id } => endpoints::set_enabled(store, &id, false, &by)
                .await
                .map(|e| describe(&e, false)),
            EndpointCommand::Enable { id } => endpoints::set_enabled(store, &id, true, &by)
                .await
                .map(|e| describe(&e, false)),
            EndpointCommand::RotateSecret { id, grace_secs } => {
                endpoints::rotate_secret(store, &id, Duration::from_secs(grace_secs), &by)
                    .await
                    .map(|e| describe(&e, true))
            }
            EndpointCommand::Remove { id } => {
                store.remove_endpoint(&id, &by).await?;
                Ok(json!({ "removed": id }))
            }
            EndpointCommand::Deliveries { id, status, limit } => {
                let status = status
                    .map(|s| {
                        DeliveryStatus::parse(&s).ok_or_else(|| {
                            invalid(format!(
                                "status `{s}` is not one of pending, delivered, failed"
                            ))
                        })
                    })
                    .transpose()?;
                endpoints::find(store, &id).await?;
                Ok(json!(
                    store
                        .deliveries(&id, status, None, limit.clamp(1, 500))
                        .await?
                ))
            }
            EndpointCommand::Delivery { id, event_id } => {
                let (delivery, attempts) = store
                    .delivery(&id, &event_id)
                    .await?
                    .ok_or_else(|| invalid(format!("no delivery of `{event_id}` to `{id}`")))?;
                Ok(json!({ "delivery": delivery, "attempts": attempts }))
            }
            EndpointCommand::Recover { id, since } => {
                let since = chrono::DateTime::parse_from_rfc3339(&since)
                    .map_err(|_| invalid(format!("--since `{since}` is not an RFC 3339 time")))?
                    .timestamp_millis();
                let n = store.requeue(&id, None, Some(since), &by).await?;
                Ok(json!({ "requeued": n }))
            }
            EndpointCommand::Retry { id, event_id } => {
                let n = store.requeue(&id, Some(&event_id), None, &by).await?;
                Ok(json!({ "requeued": n }))
            }
        }
    })
}
