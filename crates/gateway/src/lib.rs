//! The gateway: the receiving side of the TOP protocol for the two loan notification APIs.
//!
//! - [`rest`]: `/router/rest`, the call as named steps (read → authenticate → dispatch →
//!   commit → respond), every protocol check of SPEC 1 in order;
//! - [`apis`]: one module per API (parse → validate → decide and apply in the store → render);
//! - [`errors`]: every TOP error the gateway builds, one constructor each;
//! - [`operators`]: operator tokens and roles; [`keys`]: the master keys;
//! - [`admin`]: the operators' read API; [`manage`]: apps and the audit over HTTP; [`feed`]: the event feed; [`openapi`]: their
//!   OpenAPI document; [`ops`]: health and metrics;
//! - [`reports`]: the reconciliation report, resolutions and the call counts behind it;
//!   [`console`]: the operator console at `/console/`, HTML rendered here;
//! - [`delivery`]: webhooks (endpoints, the dispatcher, the SSRF guard) and the NATS publisher;
//! - [`startup`]: building and running the application from a [`config::Config`];
//! - [`server`]: the HTTP loop, with every stage of a connection timed and their number capped.

pub mod admin;
pub mod apis;
pub mod apps;
pub mod config;
pub mod console;
pub mod delivery;
pub mod errors;
pub mod feed;
pub mod keys;
pub mod manage;
pub mod metrics;
pub mod openapi;
pub mod operators;
pub mod ops;
pub mod reports;
pub mod rest;
pub mod sandbox;
pub mod server;
pub mod startup;
pub mod state;
pub mod tls;

pub use config::Config;
pub use startup::Application;
