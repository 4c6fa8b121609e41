//! `loanwire keys rotate`: a new master key, and every secret sealed again under it (SPEC 5).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use loanwire_gateway::keys::{self, KeySource};
use loanwire_gateway::operators::cli_actor;
use serde_json::json;

use super::database::{with_store, DatabaseArgs};

#[derive(Args)]
pub struct KeysArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Seal every secret under a new master key, while gateways keep running.
    ///
    /// With a key file: a new key is put first in it (the older ones stay, for gateways that have
    /// not read it again yet) and every secret is sealed again under it. With
    /// LOANWIRE_MASTER_KEY: list the new key first (`NEW,OLD`) for every instance and for this
    /// command; it seals every secret again under the first, after which OLD can be dropped.
    Rotate,
}

pub fn run(args: KeysArgs) -> ExitCode {
    let config = match args.db.config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let KeysCommand::Rotate = args.command;
    let source = match keys::load(&config) {
        Ok(Some((_, source))) => source,
        Ok(None) => {
            eprintln!("error: there is no loanwire database here, so no key to rotate");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let held = match &source {
        KeySource::File(path) => match keys::add_key_to_file(path) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        KeySource::Env => config.master_key.as_deref().map_or(0, |k| {
            loanwire_store::secrets::parse_keys(k).map_or(0, |l| l.len())
        }),
    };
    with_store(config, |store| async move {
        let sealed = store.seal_secrets(true, &cli_actor()).await?;
        let mut answer = json!({ "sealed": sealed, "keys_held": held });
        match source {
            KeySource::File(path) => {
                answer["key_file"] = json!(path.display().to_string());
                answer["note"] = json!("every secret is sealed under the new first key; the older keys stay in the file for gateways that have not read it again yet");
            }
            KeySource::Env if held < 2 => {
                answer["note"] = json!("LOANWIRE_MASTER_KEY holds one key: every secret is sealed under it; to rotate, give NEW,OLD to every instance and run this again");
            }
            KeySource::Env => {
                answer["note"] = json!("every secret is sealed under the first key of LOANWIRE_MASTER_KEY: the others can now be dropped from every instance");
            }
        }
        Ok(answer)
    })
}
