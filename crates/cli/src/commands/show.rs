//! `loan show`, `process show`, `inbox`: the operators' read API from the command line.

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ReadConnection {
    /// The gateway (`http://host:port`; a `/router/rest` path is ignored).
    #[arg(
        long,
        env = "LOANWIRE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub(crate) url: String,
    /// The read API's bearer token: an operator token, or the bootstrap one.
    #[arg(
        long,
        alias = "token",
        env = "LOANWIRE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub(crate) admin_token: Option<String>,
}

#[derive(Args)]
pub struct LoanArgs {
    #[command(flatten)]
    conn: ReadConnection,
    #[command(subcommand)]
    command: LoanCommand,
}

#[derive(Subcommand)]
enum LoanCommand {
    /// A loan note: status, identity, reconciliation flags and history.
    Show { loan_apply_no: String },
    /// Resolve a loan note's reconciliation flags with a note (recorded in its history and in
    /// the admin audit; needs an operator token).
    Resolve {
        loan_apply_no: String,
        /// What was found and done.
        #[arg(long)]
        note: String,
    },
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    conn: ReadConnection,
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Loan notes flagged for reconciliation, processes stuck IN_PROCESSING, and per-app
    /// figures (calls, refused/stale/duplicate shares, signature failures, top error codes).
    Reconciliation {
        /// json or csv.
        #[arg(long, default_value = "json")]
        format: String,
        /// Hours the per-app figures cover (1 to 720).
        #[arg(long, default_value_t = 24)]
        window_hours: u32,
        /// Rows of each list (1 to 1000).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// The `next_flagged_before` of the previous page.
        #[arg(long)]
        flagged_before: Option<String>,
    },
}

pub fn report(args: ReportArgs) -> ExitCode {
    let ReportCommand::Reconciliation {
        format,
        window_hours,
        limit,
        flagged_before,
    } = args.command;
    let mut query = vec![
        ("format", format),
        ("window_hours", window_hours.to_string()),
        ("limit", limit.to_string()),
    ];
    if let Some(c) = flagged_before {
        query.push(("flagged_before", c));
    }
    get(
        &args.conn,
        &["api", "v1", "reports", "reconciliation"],
        &query,
    )
}

#[derive(Args)]
pub struct ProcessArgs {
    #[command(flatten)]
    conn: ReadConnection,
    #[command(subcommand)]
    command: ProcessCommand,
}

#[derive(Subcommand)]
enum ProcessCommand {
    /// A credit/loan process: status and history.
    Show {
        channel_id: String,
        #[arg(value_name = "TYPE")]
        process_type: String,
        process_no: String,
    },
}

#[derive(Args)]
pub struct InboxArgs {
    #[command(flatten)]
    conn: ReadConnection,
    #[arg(long)]
    app: Option<String>,
    #[arg(long)]
    method: Option<String>,
    /// applied, duplicate, stale or refused.
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Only records older than this id (the `next_before` of the previous page).
    #[arg(long)]
    before: Option<i64>,
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    conn: ReadConnection,
    /// Only changes to this target (an app key, a token name).
    #[arg(long)]
    target: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only entries older than this id (the `next_before` of the previous page).
    #[arg(long)]
    before: Option<i64>,
}

pub fn audit(args: AuditArgs) -> ExitCode {
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    if let Some(t) = args.target {
        query.push(("target", t));
    }
    if let Some(b) = args.before {
        query.push(("before", b.to_string()));
    }
    get(&args.conn, &["api", "v1", "audit"], &query)
}

pub fn loan(args: LoanArgs) -> ExitCode {
    match args.command {
        LoanCommand::Show { loan_apply_no } => {
            get(&args.conn, &["api", "v1", "loans", &loan_apply_no], &[])
        }
        LoanCommand::Resolve {
            loan_apply_no,
            note,
        } => send(
            &args.conn,
            reqwest::Method::POST,
            &["api", "v1", "loans", &loan_apply_no, "resolve"],
            &[],
            Some(serde_json::json!({ "note": note })),
        ),
    }
}

pub fn process(args: ProcessArgs) -> ExitCode {
    let ProcessCommand::Show {
        channel_id,
        process_type,
        process_no,
    } = args.command;
    get(
        &args.conn,
        &[
            "api",
            "v1",
            "processes",
            &channel_id,
            &process_type,
            &process_no,
        ],
        &[],
    )
}

pub fn inbox(args: InboxArgs) -> ExitCode {
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    for (k, v) in [
        ("app", args.app),
        ("method", args.method),
        ("outcome", args.outcome),
    ] {
        if let Some(v) = v {
            query.push((k, v));
        }
    }
    if let Some(b) = args.before {
        query.push(("before", b.to_string()));
    }
    get(&args.conn, &["api", "v1", "inbox"], &query)
}

/// The read API's URL for `segments` and `query`, and the token; or why there is none (said on
/// stderr, as the exit status to end with).
pub(crate) fn endpoint(
    conn: &ReadConnection,
    segments: &[&str],
    query: &[(&str, String)],
) -> Result<(url::Url, String), ExitCode> {
    let Some(token) = &conn.admin_token else {
        eprintln!("error: the read API needs --admin-token or LOANWIRE_ADMIN_TOKEN");
        return Err(ExitCode::from(2));
    };
    let mut url = match url::Url::parse(&conn.url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: --url `{}`: {e}", conn.url);
            return Err(ExitCode::from(2));
        }
    };
    url.set_query(None);
    match url.path_segments_mut() {
        Ok(mut p) => {
            p.clear().extend(segments);
        }
        Err(()) => {
            eprintln!("error: --url `{}` cannot carry a path", conn.url);
            return Err(ExitCode::from(2));
        }
    }
    if !query.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    }
    Ok((url, token.clone()))
}

fn get(conn: &ReadConnection, segments: &[&str], query: &[(&str, String)]) -> ExitCode {
    send(conn, reqwest::Method::GET, segments, query, None)
}

/// Calls the operators' API and prints the answer: JSON pretty, anything else (CSV) as is.
fn send(
    conn: &ReadConnection,
    method: reqwest::Method,
    segments: &[&str],
    query: &[(&str, String)],
    body: Option<serde_json::Value>,
) -> ExitCode {
    let (url, token) = match endpoint(conn, segments, query) {
        Ok(e) => e,
        Err(code) => return code,
    };
    loanwire_client::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut request = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(&token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let resp = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(super::exit::TRANSPORT);
            }
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let pretty = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok());
        match (status.is_success(), pretty) {
            (true, Some(p)) => println!("{p}"),
            (true, None) => print!("{body}"),
            (false, p) => {
                eprintln!("error: HTTP {status}: {}", p.unwrap_or(body));
                return ExitCode::FAILURE;
            }
        }
        ExitCode::SUCCESS
    })
}
