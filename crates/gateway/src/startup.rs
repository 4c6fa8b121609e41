//! Building the application from configuration, on a listener the caller bound (port 0 in
//! tests), and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::any;
use axum::Router;
use loanwire_store::postgres::{PgOptions, PgStore};
use loanwire_store::sqlite::{SqliteOptions, SqliteStore};
use loanwire_store::{Store, StoreError};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::state::{AppCache, AppState, RateLimits};
use crate::{admin, feed, manage, openapi, ops, rest};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "there is no loanwire database at {}: start with --init to create one there (or --sandbox for a local sandbox)",
        .0.display()
    )]
    NoDatabase(std::path::PathBuf),
    #[error("cannot open the database: {0}")]
    Store(StoreError),
    #[error("cannot serve HTTPS: {0}")]
    Tls(String),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store the configuration names: PostgreSQL when `database` is set, else SQLite
/// in `data_dir`, created there only with `init` or `sandbox`.
pub fn open_store(config: &Config, metrics: &Arc<Metrics>) -> Result<Arc<dyn Store>, StoreError> {
    let secrets = crate::keys::secret_box(config)?;
    let observer: loanwire_store::WriterObserverRef = Arc::new(metrics.writer_observer());
    if let Some(url) = &config.database {
        let options = PgOptions {
            secrets,
            writers: config.pg_writers,
            max_batch: config.max_batch,
            observer: Some(observer),
            ..PgOptions::default()
        };
        return Ok(Arc::new(PgStore::open(url, options)?));
    }
    let options = SqliteOptions {
        secrets,
        create: config.init || config.sandbox,
        max_batch: config.max_batch,
        observer: Some(observer),
        busy_timeout: Duration::from_millis(config.sqlite_busy_timeout_ms),
        ..SqliteOptions::default()
    };
    Ok(Arc::new(SqliteStore::open(&config.data_dir, options)?))
}

/// The networks webhooks may reach beside public ones: `events.allowed_subnets` (validated with
/// the configuration), and in the sandbox, which listens on loopback only, this machine too,
/// so that `loanwire webhook listen` can be tried at once.
fn webhook_nets(config: &Config) -> Vec<ipnet::IpNet> {
    let mut nets = config.events.allowed_nets().unwrap_or_default();
    if config.sandbox {
        nets.extend(["127.0.0.0/8", "::1/128"].map(|n| n.parse::<ipnet::IpNet>().expect("valid")));
    }
    nets
}

pub fn state(config: Config, store: Arc<dyn Store>, metrics: Arc<Metrics>) -> AppState {
    AppState {
        apps: Arc::new(AppCache::new(Duration::from_millis(config.app_cache_ms))),
        limits: Arc::new(RateLimits::new(config.default_rate_limit)),
        // Validated with the configuration.
        guard: Arc::new(crate::delivery::ssrf::Guard::new(webhook_nets(&config))),
        config: Arc::new(config),
        store,
        metrics,
        rejections: Arc::default(),
        stopping: Arc::new(tokio::sync::watch::channel(false).0),
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(loanwire_top::ROUTER_PATH, any(rest::router_rest))
        .merge(admin::routes())
        .merge(manage::routes())
        .merge(crate::delivery::api::routes())
        .merge(feed::routes())
        .merge(crate::reports::routes())
        .merge(crate::console::routes())
        .merge(openapi::routes())
        .merge(ops::routes())
        .with_state(state)
}

pub struct Application {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    state: AppState,
}

impl Application {
    /// Validates the configuration, opens the store and builds the routes.
    pub async fn build(config: Config, listener: TcpListener) -> Result<Application, StartError> {
        config.validate()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                Some(crate::tls::acceptor(cert, key).map_err(StartError::Tls)?)
            }
            _ => None,
        };
        let metrics = Arc::new(Metrics::default());
        let store = open_store(&config, &metrics).map_err(|e| match e {
            StoreError::Missing(path) => StartError::NoDatabase(path),
            other => StartError::Store(other),
        })?;
        let sealed = store
            .seal_secrets(false, &crate::operators::gateway_actor())
            .await
            .map_err(StartError::Store)?;
        if sealed > 0 {
            tracing::info!(apps = sealed, "app secrets stored as given are now sealed");
        }
        let mut app = Application::with_store(config, store, metrics, listener);
        app.tls = tls;
        Ok(app)
    }

    pub fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        listener: TcpListener,
    ) -> Application {
        let state = state(config, store, metrics);
        Application {
            listener,
            tls: None,
            router: router(state.clone()),
            state,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight calls finish
    /// (each answers only after its commit) and returns, within `shutdown_grace_secs`.
    pub async fn run_until<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cfg = &self.state.config;
        let limits = crate::server::ServerLimits {
            header_timeout: Duration::from_secs(cfg.header_timeout_secs),
            max_connections: cfg.max_connections,
            grace: Duration::from_secs(cfg.shutdown_grace_secs),
            tls: self.tls,
        };
        let pruner = tokio::spawn(feed::prune_forever(
            self.state.store.clone(),
            cfg.events.retention_days,
        ));
        let counter = tokio::spawn(crate::reports::roll_up_forever(
            self.state.store.clone(),
            self.state.rejections.clone(),
            cfg.reports.counts_days,
            self.state.stopping.subscribe(),
        ));
        let owner = format!("gw-{}", ulid::Ulid::new());
        let dispatcher = tokio::spawn(
            crate::delivery::Dispatcher {
                store: self.state.store.clone(),
                config: cfg.events.clone(),
                guard: self.state.guard.clone(),
                metrics: self.state.metrics.clone(),
                owner: owner.clone(),
            }
            .run(self.state.stopping.subscribe()),
        );
        let publisher = cfg.events.nats.clone().map(|nats| {
            tokio::spawn(
                crate::delivery::nats::Publisher {
                    store: self.state.store.clone(),
                    config: nats,
                    metrics: self.state.metrics.clone(),
                    owner,
                }
                .run(self.state.stopping.subscribe()),
            )
        });
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let grace = limits.grace;
        let served = crate::server::serve(self.listener, self.router, limits, shutdown).await;
        pruner.abort();
        // Attempts in flight finish and are recorded (each is bounded by its timeout), within
        // the grace; what is cut short is sent again (deliveries are at least once).
        let _ = tokio::time::timeout(grace, async {
            let _ = counter.await;
            let _ = dispatcher.await;
            if let Some(p) = publisher {
                let _ = p.await;
            }
        })
        .await;
        served
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: no new calls, finishing the ones in flight");
}
