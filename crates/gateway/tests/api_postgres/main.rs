//! The gateway suite of `tests/api`, the same files, against PostgreSQL; plus what only a shared
//! database has: several instances, and the database going away and coming back.
//! Runs against `LOANWIRE_TEST_DATABASE_URL`, else the PostgreSQL on 127.0.0.1:5432 (database
//! `test`) when one answers; without either, every test here says SKIPPED and why.

pub const BACKEND: helpers::Backend = helpers::Backend::Postgres;

#[path = "../api/callback.rs"]
mod callback;
#[path = "../api/concurrency.rs"]
mod concurrency;
#[path = "../api/durability.rs"]
mod durability;
#[path = "../api/events.rs"]
mod events;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/loan_change.rs"]
mod loan_change;
#[path = "../api/malformed.rs"]
mod malformed;
#[path = "../api/operators.rs"]
mod operators;
#[path = "../api/protocol.rs"]
mod protocol;
#[path = "../api/read_api.rs"]
mod read_api;
#[path = "../api/receiver.rs"]
mod receiver;
#[path = "../api/reports.rs"]
mod reports;
#[path = "../api/webhooks.rs"]
mod webhooks;

mod deliveries;
mod feed;
mod instances;
mod outage;
