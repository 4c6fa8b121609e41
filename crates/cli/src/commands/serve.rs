use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::output::say;
use loanwire_gateway::startup::{shutdown_signal, Application};
use loanwire_gateway::{apps, sandbox, Config};

#[derive(Args)]
pub struct ServeArgs {
    /// A TOML configuration file (see README); environment variables and flags override it.
    #[arg(long, env = "LOANWIRE_CONFIG")]
    config: Option<PathBuf>,
    /// ADDR:PORT to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Directory of the embedded database [default: ./loanwire-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL instead of the embedded database (LOANWIRE_DATABASE_URL).
    #[arg(long)]
    database: Option<String>,
    /// Partner sandbox: a demo app, an admin token, signing hints on "Invalid signature".
    #[arg(long)]
    sandbox: bool,
    /// Let the sandbox listen on an address other machines reach (it prints its demo secret).
    #[arg(long)]
    sandbox_public: bool,
    /// Create the database when the data directory has none (the first start of a gateway).
    #[arg(long)]
    init: bool,
    /// Serve HTTPS with this PEM certificate chain (LOANWIRE_TLS_CERT; needs --tls-key).
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key (LOANWIRE_TLS_KEY).
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Bearer token of the read API (LOANWIRE_ADMIN_TOKEN).
    #[arg(long)]
    admin_token: Option<String>,
}

pub fn config_from(file: Option<&std::path::Path>) -> Result<Config, String> {
    let mut config = Config::load(file).map_err(|e| e.to_string())?;
    config
        .apply_env(std::env::vars())
        .map_err(|e| e.to_string())?;
    Ok(config)
}

pub fn run(args: ServeArgs) -> ExitCode {
    let mut config = match config_from(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(url) = args.database {
        config.database = Some(url);
    }
    config.sandbox |= args.sandbox;
    config.init |= args.init;
    config.sandbox_public |= args.sandbox_public;
    if let Some(t) = args.admin_token {
        config.admin_token = Some(t);
    }
    if let Some(c) = args.tls_cert {
        config.tls_cert = Some(c);
    }
    if let Some(k) = args.tls_key {
        config.tls_key = Some(k);
    }
    if config.sandbox && config.admin_token.is_none() {
        config.admin_token = Some(apps::new_secret());
    }
    if let Err(e) = config.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    crate::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let sandbox_mode = config.sandbox;
        let admin_token = config.admin_token.clone();
        let data_dir = match &config.database {
            Some(_) => "PostgreSQL".to_string(),
            None => config.data_dir.display().to_string(),
        };
        let app = match Application::build(config, listener).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = app.local_addr();
        let scheme = if app.state().config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{addr}");
        if sandbox_mode {
            match sandbox::ensure_demo_app(app.state().store.as_ref()).await {
                Ok(demo) => print_sandbox_banner(&url, &demo, admin_token.as_deref().unwrap_or("")),
                Err(e) => {
                    eprintln!("error: cannot create the sandbox app: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            say(&format!(
                "loanwire gateway listening on {url}/router/rest (data in {data_dir})"
            ));
        }
        match app.run_until(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn print_sandbox_banner(url: &str, demo: &sandbox::Sandbox, admin_token: &str) {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "loanwire".into());
    say(&format!(
        "loanwire sandbox gateway listening on {url}/router/rest

  app key:     {key}
  secret:      {secret}
  admin token: {admin_token}

Send a first callback from another terminal:

  export LOANWIRE_URL={url} LOANWIRE_APP_KEY={key} LOANWIRE_APP_SECRET={secret} LOANWIRE_ADMIN_TOKEN={admin_token}
  {exe} call idle-loan-callback --user 3 --user-id 3 --status IN_PROCESSING --type CREDIT --process-no P001 --channel-id wzzx
  {exe} process show wzzx CREDIT P001

The operator console: {url}/console/ (sign in with the admin token).

This is a sandbox, not for production: its demo app's secret is printed above, and the demo app
is refused whenever the gateway runs without --sandbox.
",
        key = demo.app_key,
        secret = demo.secret,
    ));
}
