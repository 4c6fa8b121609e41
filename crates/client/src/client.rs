use std::time::{Duration, Instant};

use loanwire_api::TopApi;
use loanwire_top::envelope::parse_response;
use loanwire_top::params as names;
use loanwire_top::time::timestamp_now;
use loanwire_top::{encode, sign, Format, ParsedResponse, SignMethod, Signature};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

use crate::{ClientError, Outcome, Reply, RetryPolicy};

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// A client for one TOP gateway and one app. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct TopClient {
    http: reqwest::Client,
    url: Url,
    app_key: String,
    secret: String,
    sign_method: SignMethod,
    format: Format,
    simplify: bool,
    session: Option<String>,
    retry: RetryPolicy,
}

#[derive(Debug, Clone)]
pub struct TopClientBuilder {
    url: String,
    app_key: String,
    secret: String,
    sign_method: SignMethod,
    format: Format,
    simplify: bool,
    session: Option<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
    gzip: bool,
    retry: RetryPolicy,
    user_agent: String,
    /// PEM certificates trusted beside the system's roots (a private CA).
    extra_roots: Vec<u8>,
}

impl TopClientBuilder {
    /// Default `hmac-sha256`.
    pub fn sign_method(mut self, m: SignMethod) -> Self {
        self.sign_method = m;
        self
    }

    /// Default JSON.
    pub fn format(mut self, f: Format) -> Self {
        self.format = f;
        self
    }

    pub fn simplify(mut self, on: bool) -> Self {
        self.simplify = on;
        self
    }

    pub fn session(mut self, session: impl Into<String>) -> Self {
        self.session = Some(session.into());
        self
    }

    /// Default 15 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Default 30 s: the longest wait for the next bytes of an answer.
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }

    /// Ask for gzip-compressed answers (default on, like the official Java SDK).
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Trusts the PEM certificates in `pem` (a private CA, a test CA) beside the system's roots.
    pub fn trust_roots_pem(mut self, pem: &[u8]) -> Self {
        self.extra_roots.extend_from_slice(pem);
        self
    }

    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    pub fn build(self) -> Result<TopClient, ClientError> {
        let mut url = Url::parse(&self.url)
            .map_err(|e| ClientError::Config(format!("gateway URL `{}`: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "gateway URL `{}` must be http or https",
                self.url
            )));
        }
        // `http://host:8080` means the gateway's one endpoint.
        if url.path().is_empty() || url.path() == "/" {
            url.set_path(loanwire_top::ROUTER_PATH);
        }
        if self.app_key.is_empty() {
            return Err(ClientError::Config("app key is empty".into()));
        }
        if self.secret.is_empty() {
            return Err(ClientError::Config("secret is empty".into()));
        }
        if self.retry.max_attempts == 0 {
            return Err(ClientError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        crate::install_crypto_provider();
        let mut http = reqwest::Client::builder();
        if !self.extra_roots.is_empty() {
            let roots = reqwest::Certificate::from_pem_bundle(&self.extra_roots)
                .map_err(|e| ClientError::Config(format!("trusted roots: {e}")))?;
            http = http.tls_certs_merge(roots);
        }
        let http = http
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .gzip(self.gzip)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(TopClient {
            http,
            url,
            app_key: self.app_key,
            secret: self.secret,
            sign_method: self.sign_method,
            format: self.format,
            simplify: self.simplify,
            session: self.session,
            retry: self.retry,
        })
    }
}

/// One signed attempt, before it is sent: what goes in the query string, what goes in the body,
/// and the signature with the string it was computed over.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    pub system: Vec<(String, String)>,
    pub api: Vec<(String, String)>,
    pub signature: Signature,
}

impl PreparedRequest {
    /// The query string: system parameters and `sign`.
    pub fn query(&self) -> String {
        encode::form_encode(
            self.system
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain([(names::SIGN, self.signature.sign.as_str())]),
        )
    }

    /// The form body: API parameters.
    pub fn body(&self) -> String {
        encode::form_encode(self.api.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A successful (non-`error_response`) answer, undecoded.
#[derive(Debug, Clone)]
pub struct TopResponse {
    /// The API's response fields, without the `<name>_response` wrapper and `request_id`.
    pub body: Map<String, Value>,
    pub request_id: Option<String>,
    pub raw: String,
    pub format: Format,
    /// How many attempts it took.
    pub attempts: u32,
}

impl TopResponse {
    /// Decodes the fields into a typed response (XML leaves are text; typed responses accept
    /// that).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_value(Value::Object(self.body.clone())).map_err(|e| ClientError::Decode {
            reason: format!("response fields do not match the expected type: {e}"),
            raw: self.raw.clone(),
        })
    }
}

fn owned<K, V, I>(params: I) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    params
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

impl TopClient {
    pub fn builder(
        url: impl Into<String>,
        app_key: impl Into<String>,
        secret: impl Into<String>,
    ) -> TopClientBuilder {
        TopClientBuilder {
            url: url.into(),
            app_key: app_key.into(),
            secret: secret.into(),
            sign_method: SignMethod::HmacSha256,
            format: Format::Json,
            simplify: false,
            session: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            gzip: true,
            retry: RetryPolicy::default(),
            user_agent: concat!("loanwire-sdk-rust/", env!("CARGO_PKG_VERSION")).to_string(),
            extra_roots: Vec::new(),
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Builds and signs one attempt with a fresh timestamp.
    pub fn prepare<K, V, I>(&self, method: &str, api_params: I) -> PreparedRequest
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.sign_prepared(method, owned(api_params))
    }

    fn sign_prepared(&self, method: &str, api: Vec<(String, String)>) -> PreparedRequest {
        let mut system = vec![
            (names::METHOD.to_string(), method.to_string()),
            (names::APP_KEY.to_string(), self.app_key.clone()),
            (names::SIGN_METHOD.to_string(), self.sign_method.to_string()),
            (names::TIMESTAMP.to_string(), timestamp_now()),
            (
                names::VERSION.to_string(),
                loanwire_top::API_VERSION.to_string(),
            ),
            (names::FORMAT.to_string(), self.format.to_string()),
        ];
        if self.simplify {
            system.push((names::SIMPLIFY.to_string(), "true".to_string()));
        }
        if let Some(s) = &self.session {
            system.push((names::SESSION.to_string(), s.clone()));
        }
        let signature = sign::sign(
            system
                .iter()
                .chain(api.iter())
                .map(|(k, v)| (k.as_str(), v.as_str())),
            self.secret.as_bytes(),
            self.sign_method,
        );
        PreparedRequest {
            system,
            api,
            signature,
        }
    }

    /// Calls any TOP method. An `error_response` comes back as [`ClientError::Top`]; retryable
    /// failures are retried according to the client's [`RetryPolicy`], each attempt freshly
    /// timestamped and signed.
    pub async fn execute<K, V, I>(
        &self,
        method: &str,
        api_params: I,
    ) -> Result<TopResponse, ClientError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let api = owned(api_params);
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let prepared = self.sign_prepared(method, api.clone());
            let result = self.send_once(&prepared).await;
            let err = match result {
                Ok(mut resp) => {
                    resp.attempts = attempt;
                    return Ok(resp);
                }
                Err(e) => e,
            };
            if !err.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(err);
            }
            let pause = self.retry.backoff(attempt);
            if started.elapsed() + pause > self.retry.max_elapsed {
                return Err(err);
            }
            tracing::warn!(method, attempt, error = %err, pause_ms = pause.as_millis() as u64, "retrying TOP call");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// Calls a typed API; a business refusal comes back as [`Outcome::Refused`].
    pub async fn call<R: TopApi>(&self, request: &R) -> Result<Outcome<R::Response>, ClientError> {
        let resp = self.execute(R::METHOD, request.to_params()).await?;
        let response: R::Response = resp.decode()?;
        let reply = Reply {
            request_id: resp.request_id,
            raw: resp.raw,
            response,
        };
        use loanwire_api::BusinessResult;
        Ok(match reply.response.business_failure() {
            None => Outcome::Accepted(reply),
            Some(failure) => Outcome::Refused { failure, reply },
        })
    }

    async fn send_once(&self, prepared: &PreparedRequest) -> Result<TopResponse, ClientError> {
        let mut url = self.url.clone();
        url.set_query(Some(&prepared.query()));
        let resp = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(prepared.body())
            .send()
            .await
            .map_err(ClientError::transport)?;
        let status = resp.status();
        let raw = resp.text().await.map_err(ClientError::transport)?;
        if status != reqwest::StatusCode::OK {
            return Err(ClientError::HttpStatus {
                status: status.as_u16(),
                body: raw,
            });
        }
        match parse_response(&raw, self.format) {
            Ok(ParsedResponse::Success { body, request_id }) => Ok(TopResponse {
                body,
                request_id,
                raw,
                format: self.format,
                attempts: 1,
            }),
            Ok(ParsedResponse::Error(error)) => Err(ClientError::Top {
                error: Box::new(error),
                raw,
            }),
            Err(e) => Err(ClientError::Decode {
                reason: e.to_string(),
                raw,
            }),
        }
    }
}
