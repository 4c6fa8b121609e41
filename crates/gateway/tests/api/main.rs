//! The gateway end to end: the real server on port 0 with a temporary data directory, called
//! over HTTP through the SDK or with hand-built requests. One file per feature.

/// The backend this binary runs the suite against; `tests/api_postgres` runs the same files
/// against PostgreSQL.
pub const BACKEND: helpers::Backend = helpers::Backend::Sqlite;

mod callback;
mod concurrency;
mod connections;
mod console;
mod durability;
mod events;
mod helpers;
mod loan_change;
mod malformed;
mod nats;
mod openapi;
mod operators;
mod protocol;
mod read_api;
mod receiver;
mod reports;
mod tls;
mod vanished;
mod webhooks;
mod xml_safety;
