//! The partner SDK: call any TOP API (Alibaba's real gateway or a loanwire gateway) with
//! correct signatures, typed requests and responses for the two seed APIs, and retries that
//! are safe because they only repeat what the platform says can be repeated.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loanwire_client::ClientError> {
//! use loanwire_client::TopClient;
//! let client = TopClient::builder("http://127.0.0.1:8080/router/rest", "app-key", "secret").build()?;
//! let answer = client.execute("alibaba.idle.interact.loan.callback", [("user", "3")]).await?;
//! println!("{}", answer.raw);
//! # Ok(()) }
//! ```

mod client;
mod error;
mod outcome;
mod retry;

pub use client::{PreparedRequest, TopClient, TopClientBuilder, TopResponse};
pub use error::ClientError;
pub use outcome::{Outcome, Reply};
pub use retry::RetryPolicy;

pub use loanwire_api as api;

/// reqwest is built without a bundled TLS crypto provider; this installs `ring` as the
/// process-wide one (a no-op when the application already installed one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub use loanwire_top as top;
