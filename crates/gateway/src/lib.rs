//! The gateway: the receiving side of the TOP protocol for the two loan notification APIs.
//!
//! - [`top`]: `/router/rest`, every protocol check of SPEC 1 in order;
//! - [`apis`]: one module per API (parse → check → apply to the store → render);
//! - [`admin`]: the operators' read API; [`ops`]: health and metrics;
//! - [`startup`]: building and running the application from a [`config::Config`].

pub mod admin;
pub mod apis;
pub mod apps;
pub mod config;
pub mod metrics;
pub mod ops;
pub mod sandbox;
pub mod startup;
pub mod state;
pub mod top;

pub use config::Config;
pub use startup::Application;
