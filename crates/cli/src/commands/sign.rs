use std::process::ExitCode;

use clap::Args;
use loanwire_top::{sign, SignMethod};

#[derive(Args)]
pub struct SignArgs {
    /// The app secret.
    #[arg(long, env = "LOANWIRE_APP_SECRET", hide_env_values = true)]
    secret: String,
    /// md5, hmac (HMAC-MD5) or hmac-sha256.
    #[arg(long, default_value = "hmac-sha256")]
    sign_method: SignMethod,
    /// Also print the exact string that was signed (the secret masked), to diff with your own.
    #[arg(long)]
    explain: bool,
    /// The parameters, exactly as sent (none is added): key=value …
    #[arg(value_parser = super::parse_pair, required = true)]
    params: Vec<(String, String)>,
}

pub fn run(args: SignArgs) -> ExitCode {
    let sig = sign::sign(
        args.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        args.secret.as_bytes(),
        args.sign_method,
    );
    if args.explain {
        println!("sign_method: {}", sig.method);
        println!("string to sign: {}", sig.explain());
    }
    println!("{}", sig.sign);
    ExitCode::SUCCESS
}
