//! Schema migrations, applied by one instance at a time.

use postgres::Client;

use super::conn::db_unavailable;
use crate::backend::check_schema_version;
use crate::StoreError;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_initial.sql"),
    include_str!("../../migrations/postgres/0002_events.sql"),
    include_str!("../../migrations/postgres/0003_operators.sql"),
    include_str!("../../migrations/postgres/0004_delivery.sql"),
    include_str!("../../migrations/postgres/0005_console.sql"),
];

/// Any number: all loanwire instances take the same advisory lock to migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6c6f_616e_7769_7265; // "loanwire"

pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db_unavailable)?;
    let result = apply(client);
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result
}

fn apply(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS loanwire_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(db_unavailable)?;
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM loanwire_migrations",
            &[],
        )
        .map_err(db_unavailable)?;
    let version: i32 = row.get(0);
    check_schema_version(i64::from(version), MIGRATIONS.len() as i64)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let mut tx = client.transaction().map_err(db_unavailable)?;
        tx.batch_execute(sql).map_err(db_unavailable)?;
        tx.execute(
            "INSERT INTO loanwire_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .map_err(db_unavailable)?;
        tx.commit().map_err(db_unavailable)?;
    }
    Ok(())
}
