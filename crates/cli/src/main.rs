//! `loanwire`: one binary for the partner CLI (`call`, `sign`) and the gateway.

mod commands;
mod output;

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
    /// Call a TOP gateway (Alibaba's or a loanwire one) as a partner app.
    Call(Box<commands::call::CallArgs>),
    /// Sign exactly the given parameters and print the upper-case sign.
    Sign(commands::sign::SignArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Call(args) => commands::call::run(*args),
        Command::Sign(args) => commands::sign::run(args),
    }
}
