use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use loanwire_api::idle_loan_callback::IdleLoanCallbackInfo;
use loanwire_api::{
    IdleLoanCallbackRequest, TopApi, XfdLoanChangeExternalRequest, XfdLoanChangeNotifyRequest,
};
use loanwire_client::{ClientError, Outcome, RetryPolicy, TopClient};
use loanwire_top::{Format, SignMethod, TopDateTime};

use super::exit;
use crate::output::pretty;

#[derive(Args)]
pub struct CallArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    api: Api,
}

/// Where to call and as whom.
#[derive(Args)]
pub struct Connection {
    /// The gateway: `http://host:port` (the router path is added) or a full `…/router/rest` URL.
    #[arg(
        long,
        env = "LOANWIRE_URL",
        default_value = "http://127.0.0.1:8080/router/rest",
        global = true
    )]
    url: String,
    #[arg(long, env = "LOANWIRE_APP_KEY", global = true)]
    app_key: Option<String>,
    #[arg(
        long,
        env = "LOANWIRE_APP_SECRET",
        hide_env_values = true,
        global = true
    )]
    secret: Option<String>,
    /// md5, hmac or hmac-sha256.
    #[arg(
        long,
        env = "LOANWIRE_SIGN_METHOD",
        default_value = "hmac-sha256",
        global = true
    )]
    sign_method: SignMethod,
    /// json or xml.
    #[arg(long, env = "LOANWIRE_FORMAT", default_value = "json", global = true)]
    format: Format,
    /// Ask for the JSON answer without the `<method>_response` wrapper.
    #[arg(long, global = true)]
    simplify: bool,
    /// Attempts in all for retryable failures (transport, isp.*); 1 disables retries.
    #[arg(long, default_value_t = 4, global = true)]
    attempts: u32,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 30, global = true)]
    read_timeout: u64,
    /// PEM certificates to trust beside the system's roots, for a gateway whose certificate a
    /// private CA signed (LOANWIRE_CA_CERT).
    #[arg(long, env = "LOANWIRE_CA_CERT", global = true)]
    ca_cert: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Api {
    /// alibaba.idle.interact.loan.callback: report a credit/loan process.
    IdleLoanCallback(CallbackArgs),
    /// alibaba.finance.xfd.loan.change.notify: report a loan note's status change.
    XfdLoanChange(LoanChangeArgs),
    /// Any TOP method with the given API parameters: METHOD key=value …
    Raw {
        method: String,
        #[arg(value_parser = super::parse_pair)]
        params: Vec<(String, String)>,
    },
}

#[derive(Args)]
struct CallbackArgs {
    #[arg(long)]
    user: String,
    #[arg(long)]
    user_id: i64,
    /// IN_PROCESSING, SUCCESS or FAIL (the gateway's vocabulary decides).
    #[arg(long)]
    status: String,
    /// CREDIT or LOAN.
    #[arg(long = "type")]
    process_type: String,
    #[arg(long)]
    process_no: String,
    #[arg(long)]
    channel_id: String,
    /// Funders, comma-separated.
    #[arg(long, value_delimiter = ',')]
    fund_products: Option<Vec<String>>,
    /// yyyy-MM-dd HH:mm:ss (GMT+8) or epoch milliseconds.
    #[arg(long)]
    submit_time: Option<TopDateTime>,
    #[arg(long)]
    complete_time: Option<TopDateTime>,
}

#[derive(Args)]
struct LoanChangeArgs {
    #[arg(long)]
    loan_apply_no: String,
    #[arg(long)]
    before_status: String,
    #[arg(long)]
    after_status: String,
    /// yyyy-MM-dd HH:mm:ss (GMT+8) or epoch milliseconds.
    #[arg(long)]
    change_time: TopDateTime,
    /// The idempotency key; a fresh unique one when left out (printed, to send again safely).
    #[arg(long)]
    request_id: Option<String>,
    #[arg(long)]
    customer_id: Option<String>,
    #[arg(long)]
    institution_loan_no: Option<String>,
}

pub fn run(args: CallArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime starts");
    runtime.block_on(call(args))
}

async fn call(args: CallArgs) -> ExitCode {
    let conn = args.conn;
    let (Some(app_key), Some(secret)) = (conn.app_key.clone(), conn.secret.clone()) else {
        eprintln!("error: an app key and secret are needed: --app-key/LOANWIRE_APP_KEY and --secret/LOANWIRE_APP_SECRET");
        return ExitCode::from(2);
    };
    let mut builder = TopClient::builder(&conn.url, app_key, secret);
    if let Some(path) = &conn.ca_cert {
        match std::fs::read(path) {
            Ok(pem) => builder = builder.trust_roots_pem(&pem),
            Err(e) => {
                eprintln!("error: --ca-cert {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    let client = match builder
        .sign_method(conn.sign_method)
        .format(conn.format)
        .simplify(conn.simplify)
        .read_timeout(Duration::from_secs(conn.read_timeout))
        .retry(RetryPolicy {
            max_attempts: conn.attempts.max(1),
            ..RetryPolicy::default()
        })
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match args.api {
        Api::IdleLoanCallback(a) => {
            let req = IdleLoanCallbackRequest {
                user: a.user,
                infos: IdleLoanCallbackInfo {
                    channel_id: a.channel_id,
                    complete_time: a.complete_time,
                    fund_products: a.fund_products,
                    process_no: a.process_no,
                    status: a.status,
                    submit_time: a.submit_time,
                    process_type: a.process_type,
                    user_id: a.user_id,
                },
            };
            typed(&client, &req).await
        }
        Api::XfdLoanChange(a) => {
            let request_id = a.request_id.unwrap_or_else(|| {
                let id = uuid::Uuid::new_v4().simple().to_string();
                eprintln!("request_id: {id}");
                id
            });
            let req = XfdLoanChangeNotifyRequest {
                param_xfd_loan_change_external_request: XfdLoanChangeExternalRequest {
                    after_status: a.after_status,
                    before_status: a.before_status,
                    change_time: a.change_time,
                    customer_id: a.customer_id,
                    institution_loan_no: a.institution_loan_no,
                    loan_apply_no: a.loan_apply_no,
                    request_id,
                },
            };
            typed(&client, &req).await
        }
        Api::Raw { method, params } => match client.execute(&method, params).await {
            Ok(resp) => {
                println!("{}", pretty(&resp.raw, client.format()));
                ExitCode::SUCCESS
            }
            Err(e) => failed(&client, e),
        },
    }
}

async fn typed<R: TopApi>(client: &TopClient, req: &R) -> ExitCode {
    match client.call(req).await {
        Ok(Outcome::Accepted(reply)) => {
            println!("{}", pretty(&reply.raw, client.format()));
            ExitCode::SUCCESS
        }
        Ok(Outcome::Refused { failure, reply }) => {
            println!("{}", pretty(&reply.raw, client.format()));
            eprintln!(
                "refused: {} ({}); the platform understood the call and refused it, retrying the same call will not help",
                failure.code, failure.message
            );
            ExitCode::from(exit::BUSINESS_REFUSAL)
        }
        Err(e) => failed(client, e),
    }
}

fn failed(client: &TopClient, e: ClientError) -> ExitCode {
    match &e {
        ClientError::Top { error, raw } => {
            println!("{}", pretty(raw, client.format()));
            eprintln!("{}", error.explain());
            ExitCode::from(exit::TOP_ERROR)
        }
        ClientError::Decode { raw, .. } => {
            println!("{raw}");
            eprintln!("{e}");
            ExitCode::from(exit::TRANSPORT)
        }
        _ => {
            eprintln!("{e}");
            ExitCode::from(exit::TRANSPORT)
        }
    }
}
