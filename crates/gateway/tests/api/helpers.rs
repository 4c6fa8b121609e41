#![allow(dead_code)] // shared by the SQLite and PostgreSQL suites, which each use a part

//! `spawn_app()`: the real gateway on port 0 with a temporary data directory, a partner app
//! registered, and ways to call it through the SDK or with hand-built requests.

use std::sync::Arc;
use std::time::Duration;

use loanwire_api::idle_loan_callback::IdleLoanCallbackInfo;
use loanwire_api::{
    IdleLoanCallbackRequest, XfdLoanChangeExternalRequest, XfdLoanChangeNotifyRequest,
};
use loanwire_client::{RetryPolicy, TopClient, TopClientBuilder};
use loanwire_gateway::apps::{self, NewApp};
use loanwire_gateway::operators::cli_actor;
use loanwire_gateway::{Application, Config};
use loanwire_store::{App, Store};
use loanwire_top::encode::form_encode;
use loanwire_top::envelope::parse_response;
use loanwire_top::time::timestamp_now;
use loanwire_top::{sign, Format, ParsedResponse, SignMethod, TopDateTime, TopError};
use serde_json::{Map, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const CALLBACK: &str = "alibaba.idle.interact.loan.callback";
pub const CHANGE: &str = "alibaba.finance.xfd.loan.change.notify";

pub type Pairs = Vec<(String, String)>;

pub struct TestApp {
    pub base: String,
    pub app_key: String,
    pub secret: String,
    pub store: Arc<dyn Store>,
    pub data_dir: Option<TempDir>,
    pub config: Config,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Which backend this test binary runs the suite against (`crate::BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The test database when the suite runs against PostgreSQL; `None` (having said SKIPPED) when
/// this suite's backend cannot run here.
fn suite_database() -> Option<Option<String>> {
    match crate::BACKEND {
        Backend::Sqlite => Some(None),
        Backend::Postgres => loanwire_testkit::pg_url().map(Some),
    }
}

/// Whether the suite's backend can run here; says SKIPPED, with the reason, when not.
pub fn backend_available() -> bool {
    suite_database().is_some()
}

/// Returns from the test when its backend is not available here.
#[macro_export]
macro_rules! skip_unless_backend {
    () => {
        if !$crate::helpers::backend_available() {
            return;
        }
    };
}

pub use loanwire_testkit::{skipped, with_pg};

/// The format the SDK asks for: JSON in the SQLite suite, XML in the PostgreSQL one, so that
/// every rule is checked through both envelopes.
pub fn sdk_format() -> Format {
    match crate::BACKEND {
        Backend::Sqlite => Format::Json,
        Backend::Postgres => Format::Xml,
    }
}

pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(ADMIN_TOKEN.into()),
        app_cache_ms: 50,
        init: true,
        ..Config::default()
    };
    if crate::BACKEND == Backend::Postgres {
        let base = suite_database()
            .flatten()
            .expect("a PostgreSQL test checks skip_unless_backend! first");
        config.database = Some(loanwire_testkit::fresh_pg_schema(&base));
        // Every instance on the database shares it; SQLite makes a key file of its own.
        config.master_key = Some(test_master_key().to_string());
    }
    config
}

/// One master key for the whole suite: instances of one test share it.
pub fn test_master_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| loanwire_store::secrets::MasterKey::generate().to_base64())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = TempDir::new().unwrap();
    let mut config = test_config(&dir);
    adjust(&mut config);
    spawn_in(dir, config, None).await
}

/// Starts the gateway on an existing data directory; `app` is the partner app to call as
/// (created when `None`).
pub async fn spawn_in(dir: TempDir, config: Config, app: Option<(String, String)>) -> TestApp {
    loanwire_client::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let application = Application::build(config.clone(), listener)
        .await
        .expect("the gateway starts");
    let addr = application.local_addr();
    let store = application.state().store.clone();
    let (app_key, secret) = match app {
        Some(a) => a,
        None => {
            let a = apps::create(
                store.as_ref(),
                NewApp {
                    name: "partner".into(),
                    ..NewApp::default()
                },
                &cli_actor(),
            )
            .await
            .unwrap();
            (a.app_key, a.secret)
        }
    };
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        app_key,
        secret,
        store,
        data_dir: Some(dir),
        config,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self) -> String {
        format!("{}/router/rest", self.base)
    }

    /// Runs SQL on the gateway's database directly (as an intruder or another process might).
    pub fn exec_sql(&self, sql: &str) -> Result<u64, String> {
        let sql = sql.to_string();
        match &self.config.database {
            Some(url) => with_pg(url, move |c| {
                c.execute(&sql, &[]).map_err(|e| e.to_string())
            }),
            None => {
                let db =
                    rusqlite::Connection::open(self.config.data_dir.join("loanwire.db")).unwrap();
                db.execute(&sql, [])
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Starts another gateway instance on the same database (PostgreSQL).
    pub async fn another_instance(&self) -> TestApp {
        let dir = TempDir::new().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..self.config.clone()
        };
        spawn_in(
            dir,
            config,
            Some((self.app_key.clone(), self.secret.clone())),
        )
        .await
    }

    pub fn client(&self) -> TopClient {
        self.client_with(|b| b)
    }

    pub fn client_with(
        &self,
        adjust: impl FnOnce(TopClientBuilder) -> TopClientBuilder,
    ) -> TopClient {
        let builder = TopClient::builder(self.url(), &self.app_key, &self.secret)
            .retry(RetryPolicy::none())
            .format(sdk_format());
        adjust(builder).build().unwrap()
    }

    /// A client for another registered app.
    pub fn client_for(&self, app: &App) -> TopClient {
        TopClient::builder(self.url(), &app.app_key, &app.secret)
            .retry(RetryPolicy::none())
            .format(sdk_format())
            .build()
            .unwrap()
    }

    pub async fn create_app(&self, spec: NewApp) -> App {
        apps::create(self.store.as_ref(), spec, &cli_actor())
            .await
            .unwrap()
    }

    /// Stops the server gracefully and hands back its data directory.
    pub async fn stop(mut self) -> (TempDir, Config, (String, String)) {
        let _ = self.shutdown.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
        (
            self.data_dir.take().unwrap(),
            self.config.clone(),
            (self.app_key.clone(), self.secret.clone()),
        )
    }

    /// A request to the operators' API with `token`, and a JSON body when given.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET on the read API with the admin token.
    pub async fn read(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn loan(&self, no: &str) -> Value {
        let (status, v) = self.read(&format!("/api/v1/loans/{no}")).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn process(&self, channel: &str, ty: &str, no: &str) -> Value {
        let (status, v) = self
            .read(&format!("/api/v1/processes/{channel}/{ty}/{no}"))
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// System parameters for `method`, signed over them and `api`, with `adjust` applied to the
    /// system parameters before signing.
    pub fn signed(
        &self,
        method: &str,
        api: &[(&str, &str)],
        sign_method: SignMethod,
        format: Format,
        adjust: impl FnOnce(&mut Vec<(String, String)>),
    ) -> (Pairs, Pairs) {
        let mut system: Vec<(String, String)> = vec![
            ("method".into(), method.into()),
            ("app_key".into(), self.app_key.clone()),
            ("sign_method".into(), sign_method.to_string()),
            ("timestamp".into(), timestamp_now()),
            ("v".into(), "2.0".into()),
            ("format".into(), format.to_string()),
        ];
        adjust(&mut system);
        let api: Vec<(String, String)> = api
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let s = sign::sign(
            system
                .iter()
                .chain(api.iter())
                .map(|(k, v)| (k.as_str(), v.as_str())),
            self.secret.as_bytes(),
            sign_method,
        );
        system.push(("sign".into(), s.sign));
        (system, api)
    }

    /// Sends parameters the way `transport` says, returns the HTTP status, content type, body.
    pub async fn send(
        &self,
        transport: Transport,
        system: &[(String, String)],
        api: &[(String, String)],
    ) -> Raw {
        let pairs =
            |v: &[(String, String)]| form_encode(v.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let req = match transport {
            Transport::Query => {
                let all: Vec<(String, String)> = system.iter().chain(api).cloned().collect();
                self.http.post(format!("{}?{}", self.url(), pairs(&all)))
            }
            Transport::Form => {
                let all: Vec<(String, String)> = system.iter().chain(api).cloned().collect();
                self.http
                    .post(self.url())
                    .header(
                        "content-type",
                        "application/x-www-form-urlencoded;charset=utf-8",
                    )
                    .body(pairs(&all))
            }
            Transport::QueryAndForm => self
                .http
                .post(format!("{}?{}", self.url(), pairs(system)))
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded;charset=utf-8",
                )
                .body(pairs(api)),
            Transport::Multipart => {
                let boundary = "----loanwire-test-boundary-7MA4YWxk";
                let mut body = String::new();
                for (k, v) in system.iter().chain(api) {
                    body.push_str(&format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{v}\r\n"
                    ));
                }
                body.push_str(&format!("--{boundary}--\r\n"));
                self.http
                    .post(self.url())
                    .header(
                        "content-type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(body)
            }
        };
        Raw::from(req.send().await.unwrap()).await
    }

    pub async fn post_bytes(&self, query: &str, content_type: &str, body: Vec<u8>) -> Raw {
        let resp = self
            .http
            .post(format!("{}?{query}", self.url()))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        Raw::from(resp).await
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Transport {
    /// Everything in the query string.
    Query,
    /// Everything in an urlencoded body (Go clients).
    Form,
    /// System parameters in the query, API parameters in the body (the official Java SDK).
    QueryAndForm,
    /// Everything as multipart (Node clients).
    Multipart,
}

pub const TRANSPORTS: [Transport; 4] = [
    Transport::Query,
    Transport::Form,
    Transport::QueryAndForm,
    Transport::Multipart,
];

#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Raw {
    async fn from(resp: reqwest::Response) -> Raw {
        Raw {
            status: resp.status().as_u16(),
            content_type: resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            body: resp.text().await.unwrap(),
        }
    }

    pub fn parsed(&self, format: Format) -> ParsedResponse {
        assert_eq!(self.status, 200, "TOP answers 200: {}", self.body);
        assert_eq!(self.content_type, format.content_type(), "{}", self.body);
        parse_response(&self.body, format).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn error(&self, format: Format) -> TopError {
        match self.parsed(format) {
            ParsedResponse::Error(e) => e,
            ParsedResponse::Success { body, .. } => panic!("expected an error, got {body:?}"),
        }
    }

    pub fn success(&self, format: Format) -> Map<String, Value> {
        match self.parsed(format) {
            ParsedResponse::Success { body, request_id } => {
                assert!(request_id.is_some_and(|r| !r.is_empty()), "{}", self.body);
                body
            }
            ParsedResponse::Error(e) => panic!("expected success, got {e}: {}", self.body),
        }
    }
}

pub fn callback(process_no: &str, status: &str) -> IdleLoanCallbackRequest {
    IdleLoanCallbackRequest {
        user: "u-3".into(),
        infos: IdleLoanCallbackInfo {
            channel_id: "wzzx".into(),
            complete_time: None,
            fund_products: Some(vec!["fund-a".into()]),
            process_no: process_no.into(),
            status: status.into(),
            submit_time: Some(TopDateTime::parse("2025-01-17 16:00:00").unwrap()),
            process_type: "CREDIT".into(),
            user_id: 3,
        },
    }
}

pub fn change(
    no: &str,
    before: &str,
    after: &str,
    at: &str,
    request_id: &str,
) -> XfdLoanChangeNotifyRequest {
    XfdLoanChangeNotifyRequest {
        param_xfd_loan_change_external_request: XfdLoanChangeExternalRequest {
            after_status: after.into(),
            before_status: before.into(),
            change_time: TopDateTime::parse(at).unwrap(),
            customer_id: Some("C-1".into()),
            institution_loan_no: Some("I-1".into()),
            loan_apply_no: no.into(),
            request_id: request_id.into(),
        },
    }
}

/// Polls `probe` until it holds, for at most two seconds (100 probes 20 ms apart): a bounded
/// wait for something the test cannot be told about (a cache expiring, a server restarting).
pub async fn eventually<F, Fut>(mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The outcomes of a loan's or process's history, oldest first.
pub fn history_outcomes(view: &Value) -> Vec<String> {
    view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap().to_string())
        .collect()
}
