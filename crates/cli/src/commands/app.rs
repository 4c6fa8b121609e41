use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use loanwire_gateway::apps::{self, describe, NewApp};
use loanwire_gateway::operators::cli_actor;
use serde_json::json;

use super::database::{with_store, DatabaseArgs};

#[derive(Args)]
pub struct AppArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Register a partner app; prints its app_key and secret as JSON.
    Create {
        #[arg(long)]
        name: String,
        /// Channels it may report processes for (comma-separated); any when left out.
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<String>>,
        /// Methods it may call (comma-separated); all when left out.
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Calls per second; the gateway default when left out.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// A chosen app key instead of a generated one.
        #[arg(long)]
        app_key: Option<String>,
    },
    /// List the apps (without secrets).
    List,
    /// Stop accepting an app's calls (code 29).
    Disable { app_key: String },
    /// Accept an app's calls again.
    Enable { app_key: String },
    /// Issue a new secret; the old one keeps working for the grace period.
    RotateSecret {
        app_key: String,
        /// Seconds the old secret keeps working.
        #[arg(long, default_value_t = 86_400)]
        grace_secs: u64,
    },
}

pub fn run(args: AppArgs) -> ExitCode {
    let mut config = match args.db.config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Registering the first app is how an operator sets up a gateway: it may create the
    // database; nothing else here may.
    config.init = matches!(args.command, AppCommand::Create { .. });
    with_store(config, |store| async move {
        let store = store.as_ref();
        let by = cli_actor();
        match args.command {
            AppCommand::Create {
                name,
                channels,
                methods,
                rate_limit,
                app_key,
            } => apps::create(
                store,
                NewApp {
                    name,
                    app_key,
                    channels,
                    methods,
                    rate_limit,
                },
                &by,
            )
            .await
            .map(|a| describe(&a, true)),
            AppCommand::List => store
                .apps()
                .await
                .map(|list| json!(list.iter().map(|a| describe(a, false)).collect::<Vec<_>>())),
            AppCommand::Disable { app_key } => apps::set_enabled(store, &app_key, false, &by)
                .await
                .map(|a| describe(&a, false)),
            AppCommand::Enable { app_key } => apps::set_enabled(store, &app_key, true, &by)
                .await
                .map(|a| describe(&a, false)),
            AppCommand::RotateSecret {
                app_key,
                grace_secs,
            } => apps::rotate_secret(store, &app_key, Duration::from_secs(grace_secs), &by)
                .await
                .map(|a| describe(&a, true)),
        }
    })
}
