//! The TOP protocol as loanwire speaks it (SPEC section 1), with no I/O and no knowledge of
//! loans: both the partner SDK and the gateway build on it, so a request signed by one is
//! verified byte for byte by the other.

pub mod encode;
pub mod envelope;
pub mod error;
pub mod params;
pub mod sign;
pub mod text;
pub mod time;
mod xml;

pub use envelope::{Format, ParsedResponse};
pub use error::{ErrorCode, TopError};
pub use params::{Params, SystemParams};
pub use sign::{SignMethod, Signature};
pub use time::{TopDateTime, GMT8};

/// The protocol version every call must carry in `v`.
pub const API_VERSION: &str = "2.0";

/// The path of the single TOP endpoint.
pub const ROUTER_PATH: &str = "/router/rest";
