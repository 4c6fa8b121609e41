//! `loanwire token create|list|revoke`: operator tokens, on the gateway's database (SPEC 5).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use loanwire_gateway::operators::{self, cli_actor};
use loanwire_store::Role;
use serde_json::json;

use super::database::{with_store, DatabaseArgs};

#[derive(Args)]
pub struct TokenArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    /// The read API, the event feed and the audit.
    Viewer,
    /// Also apps (and later endpoints and resolutions).
    Operator,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a named token; prints it once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke the token with this name: it is refused from the next request on.
    Revoke { name: String },
}

pub fn run(args: TokenArgs) -> ExitCode {
    let config = match args.db.config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    with_store(config, |store| async move {
        let by = cli_actor();
        match args.command {
            TokenCommand::Create { name, role } => {
                let role = match role {
                    RoleArg::Viewer => Role::Viewer,
                    RoleArg::Operator => Role::Operator,
                };
                let (t, text) = operators::create(store.as_ref(), &name, role, &by).await?;
                Ok(json!({ "name": t.name, "role": t.role, "id": t.id, "token": text }))
            }
            TokenCommand::List => Ok(json!(store.tokens().await?)),
            TokenCommand::Revoke { name } => Ok(json!(store.revoke_token(&name, &by).await?)),
        }
    })
}
