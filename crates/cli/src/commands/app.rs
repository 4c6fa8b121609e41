use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use loanwire_gateway::apps::{self, NewApp};
use loanwire_gateway::metrics::Metrics;
use loanwire_gateway::startup::open_store;
use loanwire_store::{App, StoreError};
use serde_json::json;

#[derive(Args)]
pub struct AppArgs {
    /// The gateway's configuration file, to find its database.
    #[arg(long, env = "LOANWIRE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory of the embedded database [default: ./loanwire-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL of the gateway's database (LOANWIRE_DATABASE_URL).
    #[arg(long, global = true)]
    database: Option<String>,
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

fn describe(app: &App, with_secret: bool) -> serde_json::Value {
    let mut v = json!({
        "app_key": app.app_key,
        "name": app.name,
        "enabled": app.enabled,
        "channels": app.channels,
        "methods": app.methods,
        "rate_limit": app.rate_limit,
    });
    if with_secret {
        v["secret"] = json!(app.secret);
        if let Some(until) = app.previous_secret_expires_ms {
            v["previous_secret_valid_until"] = json!(loanwire_top::time::format_ms(until));
        }
    }
    v
}

pub fn run(args: AppArgs) -> ExitCode {
    let mut config = match super::serve::config_from(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(url) = args.database {
        config.database = Some(url);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Registering the first app is how an operator sets up a gateway: it may create the
    // database; nothing else here may.
    config.init = matches!(args.command, AppCommand::Create { .. });
    runtime.block_on(async move {
        let store = match open_store(&config, &Arc::new(Metrics::default())) {
            Ok(s) => s,
            Err(StoreError::Missing(path)) => {
                eprintln!(
                    "error: there is no loanwire database at {}: `loanwire app create` or `loanwire serve --init` creates it",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let store = store.as_ref();
        let result = match args.command {
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
            )
            .await
            .map(|a| describe(&a, true)),
            AppCommand::List => store
                .apps()
                .await
                .map(|list| json!(list.iter().map(|a| describe(a, false)).collect::<Vec<_>>())),
            AppCommand::Disable { app_key } => apps::set_enabled(store, &app_key, false)
                .await
                .map(|a| describe(&a, false)),
            AppCommand::Enable { app_key } => apps::set_enabled(store, &app_key, true)
                .await
                .map(|a| describe(&a, false)),
            AppCommand::RotateSecret {
                app_key,
                grace_secs,
            } => apps::rotate_secret(store, &app_key, Duration::from_secs(grace_secs))
                .await
                .map(|a| describe(&a, true)),
        };
        match result {
            Ok(v) => {
                println!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
