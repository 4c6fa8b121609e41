//! Operator tokens (SPEC 5): who may use the read API and the admin API, and as what.
//!
//! A token reads `lwt_<id>_<secret>`: the id finds its record, and only a SHA-256 of the secret
//! is stored, compared in constant time. The secret is 256 random bits, so a fast hash is the
//! right one (there is nothing to stretch). `LOANWIRE_ADMIN_TOKEN` is a bootstrap `operator`
//! token named `bootstrap`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use loanwire_store::{Actor, Role, Store, StoreError, Token};
use loanwire_top::time::now_ms;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::admin::ApiError;
use crate::state::AppState;

const PREFIX: &str = "lwt_";

/// The bootstrap token's name in the audit.
pub const BOOTSTRAP: &str = "bootstrap";

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new token for `name`: its record (to store) and its text (to show once).
pub fn new_token(name: &str, role: Role, created_by: &str) -> Result<(Token, String), StoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(StoreError::Invalid(
            "a token's name is 1 to 64 printable characters".into(),
        ));
    }
    let id = hex::encode(rand::rng().random::<[u8; 6]>());
    let secret = B64URL.encode(rand::rng().random::<[u8; 32]>());
    let token = Token {
        id: id.clone(),
        name: name.to_string(),
        role,
        secret_hash: hex::encode(hash(&secret)),
        created_ms: now_ms(),
        created_by: created_by.to_string(),
        revoked_ms: None,
    };
    Ok((token, format!("{PREFIX}{id}_{secret}")))
}

/// Creates a token; its text is in the answer only.
pub async fn create(
    store: &dyn Store,
    name: &str,
    role: Role,
    by: &Actor,
) -> Result<(Token, String), StoreError> {
    let (token, text) = new_token(name, role, &by.name)?;
    store.create_token(&token, by).await?;
    Ok((token, text))
}

/// The local user running a `loanwire` command on the database: `cli:<user>`, from `cli`.
pub fn cli_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Actor {
        name: format!("cli:{user}"),
        source: "cli".into(),
    }
}

/// The gateway itself, for what it changes on its own at start (the sandbox app, sealing).
pub fn gateway_actor() -> Actor {
    Actor {
        name: "loanwire".into(),
        source: "start".into(),
    }
}

/// An authenticated caller of the operators' APIs.
#[derive(Debug, Clone)]
pub struct Operator {
    pub actor: Actor,
    pub role: Role,
    /// The token signed in with: its id, or [`bootstrap_id`] for the bootstrap token.
    pub token_id: String,
}

impl Operator {
    /// Refuses a viewer what only an operator may do.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "the token `{}` is a {} token: this needs an {} token",
                self.actor.name,
                self.role.as_str(),
                role.as_str()
            ),
        ))
    }
}

fn unauthorized() -> ApiError {
    ApiError(
        StatusCode::UNAUTHORIZED,
        "a valid `Authorization: Bearer <token>` is needed: an operator token from `loanwire token create`, or LOANWIRE_ADMIN_TOKEN".into(),
    )
}

/// Who a bearer token is, if anyone.
pub async fn authenticate(
    state: &AppState,
    given: &str,
    source: String,
) -> Result<Operator, ApiError> {
    if let Some(bootstrap) = &state.config.admin_token {
        // Hashes of equal length, so the comparison's time says nothing of either.
        if bool::from(hash(bootstrap).ct_eq(&hash(given))) {
            return Ok(Operator {
                actor: Actor {
                    name: BOOTSTRAP.into(),
                    source,
                },
                role: Role::Operator,
                token_id: bootstrap_id(bootstrap),
            });
        }
    }
    let Some((id, secret)) = given
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return Err(unauthorized());
    };
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unauthorized());
    }
    let token = state.store.token(id).await?.ok_or_else(unauthorized)?;
    let stored = hex::decode(&token.secret_hash).unwrap_or_default();
    if !bool::from(stored.ct_eq(&hash(secret)[..])) || token.revoked_ms.is_some() {
        return Err(unauthorized());
    }
    Ok(Operator {
        actor: Actor {
            name: token.name,
            source,
        },
        role: token.role,
        token_id: token.id,
    })
}

/// How a session made with the bootstrap token names it: by a hash of the token, so that
/// changing LOANWIRE_ADMIN_TOKEN ends its sessions.
pub fn bootstrap_id(token: &str) -> String {
    format!("{BOOTSTRAP}:{}", &hex::encode(hash(token))[..16])
}

/// The operator behind a console session's token, if the token still stands (not revoked; the
/// bootstrap token unchanged).
pub async fn of_session(
    state: &AppState,
    token_id: &str,
    source: String,
) -> Result<Option<Operator>, StoreError> {
    if token_id.starts_with(BOOTSTRAP) {
        let current = state.config.admin_token.as_deref().map(bootstrap_id);
        return Ok((current.as_deref() == Some(token_id)).then(|| Operator {
            actor: Actor {
                name: BOOTSTRAP.into(),
                source,
            },
            role: Role::Operator,
            token_id: token_id.to_string(),
        }));
    }
    let token = state.store.token(token_id).await?;
    Ok(token.filter(|t| t.revoked_ms.is_none()).map(|t| Operator {
        actor: Actor {
            name: t.name,
            source,
        },
        role: t.role,
        token_id: t.id,
    }))
}

/// The caller's address as the audit records it.
pub fn source_of(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if given.is_empty() {
            return Err(unauthorized());
        }
        authenticate(state, given, source_of(&parts.extensions)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_shows_its_secret_once_and_stores_only_its_hash() {
        let (token, text) = new_token("ci", Role::Viewer, "cli:root").unwrap();
        let (id, secret) = text.strip_prefix(PREFIX).unwrap().split_once('_').unwrap();
        assert_eq!(id, token.id);
        assert_eq!(token.secret_hash, hex::encode(hash(secret)));
        assert!(!token.secret_hash.contains(secret));
        assert_eq!(secret.len(), 43, "256 bits");
        assert!(new_token(" ", Role::Viewer, "x").is_err());
        assert!(new_token("a\nb", Role::Viewer, "x").is_err());
    }
}
