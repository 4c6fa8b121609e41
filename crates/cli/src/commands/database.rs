//! What the commands that work on the gateway's database directly share: finding it, opening it,
//! and printing what they did.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use loanwire_gateway::metrics::Metrics;
use loanwire_gateway::startup::open_store;
use loanwire_gateway::Config;
use loanwire_store::{Store, StoreError};

#[derive(Args)]
pub struct DatabaseArgs {
    /// The gateway's configuration file, to find its database.
    #[arg(long, env = "LOANWIRE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Directory of the embedded database [default: ./loanwire-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL of the gateway's database (LOANWIRE_DATABASE_URL).
    #[arg(long, global = true)]
    database: Option<String>,
}

impl DatabaseArgs {
    /// The gateway's configuration, with this command's overrides.
    pub fn config(&self) -> Result<Config, ExitCode> {
        let mut config = super::serve::config_from(self.config.as_deref()).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?;
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(url) = &self.database {
            config.database = Some(url.clone());
        }
        Ok(config)
    }
}

/// Opens the database `config` names (creating it only with `config.init`) and runs `f` on it;
/// prints its answer as JSON, or its error.
pub fn with_store<F, Fut>(config: Config, f: F) -> ExitCode
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<serde_json::Value, StoreError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
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
        match f(store).await {
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
