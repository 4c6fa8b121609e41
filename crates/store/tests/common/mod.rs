//! What the store's integration tests build their units of work from, and the databases they
//! run on.
#![allow(dead_code)] // each test binary uses a part

use std::sync::Arc;

use loanwire_domain::process::{ProcessKey, ProcessState};
use loanwire_domain::Outcome;
use loanwire_store::postgres::{PgOptions, PgStore};
use loanwire_store::sqlite::{SqliteOptions, SqliteStore, DB_FILE};
use loanwire_store::{InboxEntry, Store, StoreError};

pub fn key(no: &str) -> ProcessKey {
    ProcessKey {
        channel_id: "c".into(),
        process_type: "CREDIT".into(),
        process_no: no.into(),
    }
}

/// A process in progress, reported by app `app`.
pub fn process(no: &str) -> ProcessState {
    ProcessState {
        key: key(no),
        user: "u".into(),
        user_id: 1,
        status: "IN_PROCESSING".into(),
        submit_time: None,
        complete_time: None,
        fund_products: None,
        app_key: "app".into(),
    }
}

/// An applied call of app `app`, about no subject.
pub fn entry(call_id: &str) -> InboxEntry {
    InboxEntry {
        call_id: call_id.into(),
        received_ms: 0,
        app_key: "app".into(),
        method: "m".into(),
        params: "{}".into(),
        outcome: Outcome::Applied,
        error_code: None,
        biz_code: None,
        subject: None,
        idempotency_key: None,
        detail: "{}".into(),
        response: "r".into(),
    }
}

/// A database to run a store test on: a temporary SQLite directory, or a fresh schema of the
/// PostgreSQL database named by `LOANWIRE_TEST_DATABASE_URL`.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { url: String },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh schema of the test database; `None`, after saying SKIPPED, without one.
    pub fn postgres() -> Option<TestDb> {
        let base = loanwire_testkit::pg_url()?;
        Some(TestDb::Postgres {
            url: loanwire_testkit::fresh_pg_schema(&base),
        })
    }

    /// Opens the store on this database (migrating it); may be called again to reopen.
    pub fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            TestDb::Sqlite(dir) => {
                Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default())?)
            }
            TestDb::Postgres { url } => Arc::new(PgStore::open(url, PgOptions::default())?),
        })
    }

    /// Opens the store with secrets sealed by `secrets`.
    pub fn open_sealed(
        &self,
        secrets: Arc<loanwire_store::secrets::SecretBox>,
    ) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            TestDb::Sqlite(dir) => Arc::new(SqliteStore::open(
                dir.path(),
                SqliteOptions {
                    secrets: Some(secrets),
                    ..SqliteOptions::default()
                },
            )?),
            TestDb::Postgres { url } => Arc::new(PgStore::open(
                url,
                PgOptions {
                    secrets: Some(secrets),
                    ..PgOptions::default()
                },
            )?),
        })
    }

    /// Runs SQL on the database behind the store's back, as another program might.
    pub fn exec(&self, sql: &str) {
        match self {
            TestDb::Sqlite(dir) => {
                let db = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
                db.execute_batch(sql).unwrap();
            }
            TestDb::Postgres { url } => {
                let sql = sql.to_string();
                loanwire_testkit::with_pg(url, move |c| c.batch_execute(&sql).unwrap());
            }
        }
    }
}

/// Defines each test twice, `sqlite::NAME` and `postgres::NAME`, each given its [`TestDb`].
#[macro_export]
macro_rules! on_both_backends {
    ($(#[doc = $doc:literal])* async fn $name:ident($db:ident) $body:block $($rest:tt)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($db: $crate::common::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run($crate::common::TestDb::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(db) = $crate::common::TestDb::postgres() {
                    run(db).await
                }
            }
        }
        $crate::on_both_backends! { $($rest)* }
    };
    () => {};
}

/// An enabled endpoint for every event type, its cursor at the start.
pub fn endpoint(id: &str) -> loanwire_store::delivery::Endpoint {
    loanwire_store::delivery::Endpoint {
        id: id.into(),
        url: "http://example.com/".into(),
        types: None,
        description: String::new(),
        secret: "whsec_x".into(),
        previous_secret: None,
        previous_secret_expires_ms: None,
        enabled: true,
        disabled_reason: None,
        failures_in_a_row: 0,
        cursor_seq: 0,
        created_ms: 0,
        updated_ms: 0,
    }
}
