//! `loanwire events tail`: the event feed from the command line, one JSON event a line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::show::{endpoint, ReadConnection};

#[derive(Args)]
pub struct EventsArgs {
    #[command(flatten)]
    conn: ReadConnection,
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print the events after a cursor, oldest first, one JSON object a line.
    Tail {
        /// Start after this `seq` (0: from the oldest kept).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Keep waiting for new events, across gateway restarts, until interrupted.
        #[arg(long)]
        follow: bool,
        /// Only these types (comma-separated): loan.changed, process.changed.
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
    },
}

/// How long a followed feed waits per request; the gateway answers sooner when events come.
const WAIT_SECS: u64 = 30;

pub fn run(args: EventsArgs) -> ExitCode {
    let EventsCommand::Tail {
        mut after,
        follow,
        types,
    } = args.command;
    loanwire_client::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(WAIT_SECS + 15))
        .build()
        .expect("an HTTP client");
    let mut out = std::io::stdout().lock();
    let mut pause = Duration::from_millis(250);
    let mut down = false;
    runtime.block_on(async {
        loop {
            let mut query = vec![("after", after.to_string()), ("limit", "1000".to_string())];
            if !types.is_empty() {
                query.push(("types", types.join(",")));
            }
            if follow {
                query.push(("wait", WAIT_SECS.to_string()));
            }
            let (url, token) = match endpoint(&args.conn, &["api", "v1", "events"], &query) {
                Ok(e) => e,
                Err(code) => return code,
            };
            let answer = match http.get(url).bearer_auth(&token).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    resp.text().await.map(|body| (status, body))
                }
                Err(e) => Err(e),
            };
            let (status, body) = match answer {
                Ok((status, body)) if !status.is_server_error() => (status, body),
                // The gateway is down or restarting: a follower waits for it, backing off.
                failed if follow => {
                    if !down {
                        let why = match failed {
                            Ok((status, _)) => format!("HTTP {status}"),
                            Err(e) => e.to_string(),
                        };
                        eprintln!("the gateway does not answer ({why}); retrying");
                        down = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
                Ok((status, body)) => {
                    eprintln!("error: HTTP {status}: {body}");
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(super::exit::TRANSPORT);
                }
            };
            if down {
                eprintln!("the gateway answers again; following from after={after}");
                down = false;
            }
            pause = Duration::from_millis(250);
            if !status.is_success() {
                eprintln!("error: HTTP {status}: {body}");
                return ExitCode::FAILURE;
            }
            let page: Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: the feed answered something that is not JSON ({e}): {body}");
                    return ExitCode::FAILURE;
                }
            };
            let events = page["events"].as_array().cloned().unwrap_or_default();
            for e in &events {
                // A closed pipe (`| head`) ends the tail quietly.
                if writeln!(out, "{e}").and_then(|()| out.flush()).is_err() {
                    return ExitCode::SUCCESS;
                }
            }
            after = page["next_after"].as_i64().unwrap_or(after);
            if events.is_empty() && !follow {
                return ExitCode::SUCCESS;
            }
        }
    })
}
