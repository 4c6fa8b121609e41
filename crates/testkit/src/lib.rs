//! What the test suites share: finding the test PostgreSQL, a fresh schema per test, and skips
//! that are seen.
//!
//! The PostgreSQL tests run against `LOANWIRE_TEST_DATABASE_URL` when it is set (set but empty:
//! not at all), else against `postgres://postgres@127.0.0.1:5432/test` when a server answers
//! there — so `cargo test --workspace` runs them on a machine that has one, and a machine that
//! has none says, test by test, that they were skipped and why.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub const PG_URL_VAR: &str = "LOANWIRE_TEST_DATABASE_URL";
pub const PG_DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Says that the running test skips, and why. Straight to the stderr descriptor: the harness
/// swallows `eprintln!` of a passing test, and a skip must be seen.
pub fn skipped(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The test database's URL, or why there is none (looked up once per test binary).
fn find_pg() -> &'static Result<String, String> {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    FOUND.get_or_init(|| match std::env::var(PG_URL_VAR) {
        Ok(url) if url.is_empty() => Err(format!("{PG_URL_VAR} is set empty")),
        Ok(url) => Ok(url),
        Err(_) => {
            // On a thread of its own: the blocking client cannot run on an async runtime's.
            let answered = std::thread::spawn(|| {
                let mut config: postgres::Config = PG_DEFAULT_URL.parse().expect("a valid URL");
                config.connect_timeout(Duration::from_secs(2));
                config.connect(postgres::NoTls).map(|_| ())
            })
            .join()
            .expect("the probe does not panic");
            match answered {
                Ok(()) => Ok(PG_DEFAULT_URL.to_string()),
                Err(e) => Err(format!(
                    "no PostgreSQL at {PG_DEFAULT_URL} ({e}); set {PG_URL_VAR}=postgres://user@host/db to run it"
                )),
            }
        }
    })
}

/// The test database's URL; `None`, after saying SKIPPED with the reason, when there is none.
pub fn pg_url() -> Option<String> {
    match find_pg() {
        Ok(url) => Some(url.clone()),
        Err(why) => {
            skipped(&format!("PostgreSQL: {why}"));
            None
        }
    }
}

/// Runs `f` with a blocking client of `url`, on a thread of its own.
pub fn with_pg<R: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut postgres::Client) -> R + Send + 'static,
) -> R {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut client =
            postgres::Client::connect(&url, postgres::NoTls).expect("the test database answers");
        f(&mut client)
    })
    .join()
    .expect("the client thread does not panic")
}

/// A new schema of the database at `base` (named `lw_t…`: `.ci/run` drops leftovers), as a URL
/// whose connections use it.
pub fn fresh_pg_schema(base: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    let schema = format!(
        "lw_t{}_{}_{nanos:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let create = format!("CREATE SCHEMA {schema}");
    with_pg(base, move |c| {
        c.batch_execute(&create).expect("schema created")
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
