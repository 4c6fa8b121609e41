//! Gateway configuration, layered: defaults → TOML file → `LOANWIRE_*` environment → flags
//! (the caller applies flags last), then validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loanwire_domain::DomainConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where the embedded SQLite database lives.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (`postgres://…`) instead of the embedded database: several gateway
    /// instances may share it.
    pub database: Option<String>,
    /// PostgreSQL: connections committing calls (each commits batches).
    pub pg_writers: usize,
    /// Partner sandbox: a demo app, a generated admin token, the signed string shown on
    /// "Invalid signature".
    pub sandbox: bool,
    /// Allow the sandbox on an address other machines reach (`--sandbox-public`): its demo
    /// app's secret is printed for anyone to use.
    pub sandbox_public: bool,
    /// The master key that seals app secrets at rest (base64 of 32 bytes), from
    /// `LOANWIRE_MASTER_KEY` only: never in a file that may be shared.
    #[serde(skip)]
    pub master_key: Option<String>,
    /// A file holding the master key; on SQLite without a key, `DATA_DIR/master.key`
    /// (created when missing).
    pub master_key_file: Option<PathBuf>,
    /// The bootstrap operator token (`LOANWIRE_ADMIN_TOKEN`); named tokens come from
    /// `loanwire token create`.
    pub admin_token: Option<String>,
    /// A PEM certificate chain and its private key: with both, the gateway serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most parameters one call may carry.
    pub max_params: usize,
    /// Seconds a request body may take to arrive.
    pub body_timeout_secs: u64,
    /// Seconds a connection may take to send a request's headers; on a keep-alive connection
    /// also the longest it may stay idle between calls.
    pub header_timeout_secs: u64,
    /// Most connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Seconds a shutdown waits for calls in flight before closing what is left.
    pub shutdown_grace_secs: u64,
    /// Create the database when the data directory has none (`--init`); otherwise a missing
    /// database stops the gateway at start, rather than an empty one replacing it unnoticed.
    #[serde(skip)]
    pub init: bool,
    /// Allowed distance between a call's `timestamp` (and a `change_time`) and the gateway's clock.
    pub timestamp_skew_secs: u64,
    /// Calls per second per app when the app has no limit of its own; 0: unlimited.
    pub default_rate_limit: u32,
    /// How long an app's record is cached; changes made by `loanwire app …` take effect within it.
    pub app_cache_ms: u64,
    /// Most calls committed in one transaction.
    pub max_batch: usize,
    /// How long SQLite waits on a lock held by another process before the call fails (code 15).
    pub sqlite_busy_timeout_ms: u64,
    /// The loan domain's vocabularies and transitions.
    pub domain: DomainConfig,
    /// The events every applied change produces (SPEC 3).
    pub events: EventsConfig,
    /// The console and the reconciliation report (SPEC 4).
    pub reports: ReportsConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsConfig {
    /// Hours a process may stay `IN_PROCESSING` before the report lists it as stuck.
    pub stuck_after_hours: u64,
    /// Days the per-minute call counts (the overview, the report's per-app figures) are kept.
    pub counts_days: u32,
    /// Hours a console sign-in lasts.
    pub session_hours: u64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            stuck_after_hours: 72,
            counts_days: 8,
            session_hours: 12,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Days an event stays in the feed; older ones are pruned.
    pub retention_days: u32,
    /// Seconds before each attempt of a webhook delivery: the first is at once; when they are
    /// used up the delivery is `failed`.
    pub webhook_schedule_secs: Vec<u64>,
    /// A delivery succeeds with a 2xx within this many seconds.
    pub webhook_timeout_secs: u64,
    /// Deliveries in flight at once per endpoint (different subjects; one subject's events go
    /// one at a time, in order).
    pub webhook_parallelism: u32,
    /// Failed events in a row that disable an endpoint.
    pub webhook_disable_after: u32,
    /// Seconds a claimed delivery is held before another instance may take it over.
    pub webhook_lease_secs: u64,
    /// Networks (CIDR) webhook URLs may reach although they are not public: loopback, private
    /// and link-local addresses are refused unless listed here.
    pub allowed_subnets: Vec<String>,
    /// Publishing every event to NATS JetStream (SPEC 3.4).
    pub nats: Option<NatsConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:4222`.
    pub url: String,
    /// The stream, created if absent, on the subjects `loanwire.>`.
    pub stream: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".into(),
            stream: "LOANWIRE".into(),
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_days: 30,
            webhook_schedule_secs: vec![0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000],
            webhook_timeout_secs: 15,
            webhook_parallelism: 128,
            webhook_disable_after: 20,
            webhook_lease_secs: 60,
            allowed_subnets: Vec::new(),
            nats: None,
        }
    }
}

impl EventsConfig {
    /// The allowed subnets, parsed.
    pub fn allowed_nets(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.allowed_subnets
            .iter()
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("events.allowed_subnets: `{s}` is not a CIDR network"))
            })
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./loanwire-data"),
            database: None,
            pg_writers: 4,
            sandbox: false,
            sandbox_public: false,
            master_key: None,
            master_key_file: None,
            admin_token: None,
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 64 * 1024,
            max_params: 64,
            body_timeout_secs: 30,
            header_timeout_secs: 10,
            max_connections: 1024,
            shutdown_grace_secs: 30,
            init: false,
            timestamp_skew_secs: 600,
            default_rate_limit: 0,
            app_cache_ms: 1000,
            max_batch: 512,
            sqlite_busy_timeout_ms: 5000,
            domain: DomainConfig::default(),
            events: EventsConfig::default(),
            reports: ReportsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file if given.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = file else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Applies `LOANWIRE_*` variables from `vars` (the process environment in production).
    pub fn apply_env<I>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError> {
            v.trim().parse().map_err(|_| ConfigError::Env {
                name: name.into(),
                message: format!("`{v}` is not a number"),
            })
        }
        for (name, v) in vars {
            match name.as_str() {
                "LOANWIRE_LISTEN" => self.listen = v,
                "LOANWIRE_DATA_DIR" => self.data_dir = PathBuf::from(v),
                "LOANWIRE_DATABASE_URL" if !v.is_empty() => self.database = Some(v),
                "LOANWIRE_PG_WRITERS" => self.pg_writers = num(&name, &v)?,
                "LOANWIRE_SANDBOX" => {
                    self.sandbox =
                        matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
                }
                "LOANWIRE_ADMIN_TOKEN" if !v.is_empty() => self.admin_token = Some(v),
                "LOANWIRE_MASTER_KEY" if !v.is_empty() => self.master_key = Some(v),
                "LOANWIRE_MASTER_KEY_FILE" if !v.is_empty() => {
                    self.master_key_file = Some(PathBuf::from(v))
                }
                "LOANWIRE_TLS_CERT" if !v.is_empty() => self.tls_cert = Some(PathBuf::from(v)),
                "LOANWIRE_TLS_KEY" if !v.is_empty() => self.tls_key = Some(PathBuf::from(v)),
                "LOANWIRE_MAX_BODY_BYTES" => self.max_body_bytes = num(&name, &v)?,
                "LOANWIRE_MAX_PARAMS" => self.max_params = num(&name, &v)?,
                "LOANWIRE_BODY_TIMEOUT_SECS" => self.body_timeout_secs = num(&name, &v)?,
                "LOANWIRE_HEADER_TIMEOUT_SECS" => self.header_timeout_secs = num(&name, &v)?,
                "LOANWIRE_MAX_CONNECTIONS" => self.max_connections = num(&name, &v)?,
                "LOANWIRE_SHUTDOWN_GRACE_SECS" => self.shutdown_grace_secs = num(&name, &v)?,
                "LOANWIRE_TIMESTAMP_SKEW_SECS" => self.timestamp_skew_secs = num(&name, &v)?,
                "LOANWIRE_DEFAULT_RATE_LIMIT" => self.default_rate_limit = num(&name, &v)?,
                "LOANWIRE_APP_CACHE_MS" => self.app_cache_ms = num(&name, &v)?,
                "LOANWIRE_MAX_BATCH" => self.max_batch = num(&name, &v)?,
                "LOANWIRE_SQLITE_BUSY_TIMEOUT_MS" => self.sqlite_busy_timeout_ms = num(&name, &v)?,
                "LOANWIRE_REPORTS_STUCK_AFTER_HOURS" => {
                    self.reports.stuck_after_hours = num(&name, &v)?
                }
                "LOANWIRE_EVENTS_RETENTION_DAYS" => self.events.retention_days = num(&name, &v)?,
                "LOANWIRE_EVENTS_ALLOWED_SUBNETS" => {
                    self.events.allowed_subnets = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }
                "LOANWIRE_NATS_URL" if !v.is_empty() => {
                    self.events.nats.get_or_insert_with(NatsConfig::default).url = v
                }
                "LOANWIRE_NATS_STREAM" if !v.is_empty() => {
                    self.events
                        .nats
                        .get_or_insert_with(NatsConfig::default)
                        .stream = v
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let Ok(listen) = self.listen.parse::<SocketAddr>() else {
            return bad(format!(
                "listen `{}` is not an ADDR:PORT socket address",
                self.listen
            ));
        };
        if self.sandbox && !listen.ip().is_loopback() && !self.sandbox_public {
            return bad(format!(
                "the sandbox prints its demo app's secret for anyone to use: it listens on a loopback address only, not `{}`, unless --sandbox-public says so",
                self.listen
            ));
        }
        if self.max_body_bytes < 1024 {
            return bad(format!(
                "max_body_bytes {} is below 1024",
                self.max_body_bytes
            ));
        }
        if self.max_params < 8 {
            return bad(format!(
                "max_params {} is below 8 (the system parameters alone)",
                self.max_params
            ));
        }
        if self.reports.stuck_after_hours == 0 || self.reports.session_hours == 0 {
            return bad(
                "reports.stuck_after_hours and reports.session_hours must be positive".into(),
            );
        }
        if self.reports.counts_days == 0 {
            return bad("reports.counts_days must be positive".into());
        }
        if self.body_timeout_secs == 0 {
            return bad("body_timeout_secs must be positive".into());
        }
        if self.header_timeout_secs == 0 {
            return bad("header_timeout_secs must be positive".into());
        }
        self.events.allowed_nets().map_err(ConfigError::Invalid)?;
        if self.events.webhook_schedule_secs.is_empty() {
            return bad("events.webhook_schedule_secs needs at least one attempt".into());
        }
        if self.events.webhook_parallelism == 0 || self.events.webhook_disable_after == 0 {
            return bad(
                "events.webhook_parallelism and webhook_disable_after must be positive".into(),
            );
        }
        if !(1..=600).contains(&self.events.webhook_timeout_secs) {
            return bad("events.webhook_timeout_secs must be 1 to 600".into());
        }
        if self.events.webhook_lease_secs <= self.events.webhook_timeout_secs {
            return bad(
                "events.webhook_lease_secs must be longer than webhook_timeout_secs".into(),
            );
        }
        if let Some(n) = &self.events.nats {
            if !n.url.starts_with("nats://") && !n.url.starts_with("tls://") {
                return bad(format!("events.nats.url `{}` is not a nats:// URL", n.url));
            }
            if n.stream.is_empty() || n.stream.contains(['.', ' ', '*', '>']) {
                return bad(format!(
                    "events.nats.stream `{}` is not a stream name",
                    n.stream
                ));
            }
        }
        if self.events.retention_days == 0 {
            return bad("events.retention_days must be positive".into());
        }
        if self.max_connections == 0 {
            return bad("max_connections must be positive".into());
        }
        if self.timestamp_skew_secs == 0 {
            return bad("timestamp_skew_secs must be positive".into());
        }
        if let Some(url) = &self.database {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return bad(
                    "database must be a postgres:// URL (leave it out for the embedded SQLite)"
                        .into(),
                );
            }
        }
        if self.database.is_some() && self.master_key.is_none() && self.master_key_file.is_none() {
            return bad(crate::keys::MISSING_PG_KEY.into());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("TLS needs both tls_cert and tls_key (PEM files)".into());
        }
        if self.pg_writers == 0 {
            return bad("pg_writers must be positive".into());
        }
        if self.max_batch == 0 {
            return bad("max_batch must be positive".into());
        }
        if let Some(t) = &self.admin_token {
            if t.len() < 16 {
                return bad("admin_token must be at least 16 characters".into());
            }
        }
        self.domain.validate().map_err(ConfigError::Invalid)
    }

    pub fn skew(&self) -> Duration {
        Duration::from_secs(self.timestamp_skew_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("loanwire-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("loanwire.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n[domain.process]\ntypes = [\"CREDIT\"]\n").unwrap();
        let mut c = Config::load(Some(&file)).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.domain.process.types, vec!["CREDIT".to_string()]);
        c.apply_env([("LOANWIRE_MAX_BODY_BYTES".to_string(), "8192".to_string())])
            .unwrap();
        assert_eq!(c.max_body_bytes, 8192);
        c.validate().unwrap();
    }

    #[test]
    fn mistakes_are_reported_clearly() {
        let mut c = Config::default();
        let e = c
            .apply_env([("LOANWIRE_MAX_PARAMS".to_string(), "many".to_string())])
            .unwrap_err();
        assert!(e.to_string().contains("LOANWIRE_MAX_PARAMS"), "{e}");
        c.listen = "localhost".into();
        assert!(c.validate().unwrap_err().to_string().contains("listen"));
        let dir = std::env::temp_dir().join(format!("loanwire-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(Config::load(Some(&file))
            .unwrap_err()
            .to_string()
            .contains("lisen"));
    }
}
