//! Connections that reconnect when lost, their prepared statements, and what database errors
//! mean to the store.

use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::{Client, NoTls, Statement};

use crate::StoreError;

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A database error, as `Unavailable` with what the database said.
pub(super) fn db_unavailable(e: postgres::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

/// What the database said, not just "db error".
pub(super) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Maps a database error: the ones that mean "someone else got there first" are conflicts.
pub(super) fn classify(e: postgres::Error) -> StoreError {
    match e.code() {
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Conflict(describe(&e))
        }
        _ => StoreError::Unavailable(describe(&e)),
    }
}

/// Prepared statements of one connection, by their SQL text.
pub(super) type Statements = HashMap<&'static str, Statement>;

/// A connection that reconnects when it is lost, with its prepared statements.
pub struct Conn {
    config: postgres::Config,
    client: Option<Client>,
    statements: Statements,
}

impl Conn {
    pub(super) fn new(config: postgres::Config) -> Conn {
        Conn {
            config,
            client: None,
            statements: HashMap::new(),
        }
    }

    /// The client (connecting first if the last one was lost) and its statements.
    pub(super) fn parts(&mut self) -> Result<(&mut Client, &mut Statements), StoreError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.statements.clear();
            self.client = Some(self.config.connect(NoTls).map_err(unavailable)?);
        }
        let client = self.client.as_mut().expect("connected above");
        Ok((client, &mut self.statements))
    }

    pub(super) fn client(&mut self) -> Result<&mut Client, StoreError> {
        Ok(self.parts()?.0)
    }

    /// Forgets a connection that failed, so the next use reconnects.
    pub(super) fn reset(&mut self) {
        self.client = None;
        self.statements.clear();
    }
}

/// Prepares once per connection.
pub(super) fn statement<C: postgres::GenericClient>(
    cache: &mut Statements,
    client: &mut C,
    sql: &'static str,
) -> Result<Statement, StoreError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql).map_err(unavailable)?;
    cache.insert(sql, s.clone());
    Ok(s)
}
