//! `loanwire`: one binary for the gateway (`serve`, `app`, `loan`, `process`, `inbox`, `events`)
//! and the partner CLI (`call`, `sign`).

mod commands;
mod output;

/// Calls allocate many small, short-lived buffers on every worker thread; mimalloc's
/// thread-local free lists measured markedly cheaper than glibc malloc for that (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loanwire",
    version,
    about = "Alibaba TOP loan notification APIs: gateway, SDK and CLI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (embedded SQLite in ./loanwire-data by default).
    Serve(commands::serve::ServeArgs),
    /// Manage partner apps in the gateway's database.
    App(commands::app::AppArgs),
    /// Operator tokens for the read and admin APIs: create, list, revoke.
    Token(commands::token::TokenArgs),
    /// The master keys that seal secrets at rest: rotate.
    Keys(commands::keys::KeysArgs),
    /// Read the admin audit (who changed what) from a running gateway.
    Audit(commands::show::AuditArgs),
    /// Webhook endpoints and their deliveries: add, list, disable, enable, rotate-secret, …
    Endpoint(commands::endpoint::EndpointArgs),
    /// Try webhooks locally: `webhook listen` verifies and prints deliveries.
    Webhook(commands::webhook::WebhookArgs),
    /// Read a loan note from a running gateway, or resolve its reconciliation flags.
    Loan(commands::show::LoanArgs),
    /// Reports from a running gateway: `report reconciliation` (JSON or CSV).
    Report(commands::show::ReportArgs),
    /// Read a credit/loan process from a running gateway.
    Process(commands::show::ProcessArgs),
    /// Read the call log (newest first) from a running gateway.
    Inbox(commands::show::InboxArgs),
    /// Follow the event feed of a running gateway.
    Events(commands::events::EventsArgs),
    /// Call a TOP gateway (Alibaba's or a loanwire one) as a partner app.
    Call(Box<commands::call::CallArgs>),
    /// Sign exactly the given parameters and print the upper-case sign.
    Sign(commands::sign::SignArgs),
    /// Load a gateway and the ceiling with signed calls; report throughput, latency, the ratio.
    Bench(Box<commands::bench::BenchArgs>),
}

/// Logs go to stderr; `LOANWIRE_LOG` filters (default `info`), `LOANWIRE_LOG_FORMAT=json`
/// writes one JSON object per line.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LOANWIRE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: not in log files, and not paid for on every call.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("LOANWIRE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::App(args) => commands::app::run(args),
        Command::Token(args) => commands::token::run(args),
        Command::Keys(args) => commands::keys::run(args),
        Command::Audit(args) => commands::show::audit(args),
        Command::Endpoint(args) => commands::endpoint::run(args),
        Command::Webhook(args) => commands::webhook::run(args),
        Command::Loan(args) => commands::show::loan(args),
        Command::Report(args) => commands::show::report(args),
        Command::Process(args) => commands::show::process(args),
        Command::Inbox(args) => commands::show::inbox(args),
        Command::Events(args) => commands::events::run(args),
        Command::Call(args) => commands::call::run(*args),
        Command::Sign(args) => commands::sign::run(args),
        Command::Bench(args) => commands::bench::run(*args),
    }
}
