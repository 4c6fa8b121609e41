//! Who is calling: the app key, the signature, the timestamp's freshness.

use std::sync::Arc;

use loanwire_store::App;
use loanwire_top::text::echo;
use loanwire_top::{sign, ErrorCode, TopError};

use super::{Call, Request};
use crate::state::AppState;

/// The app behind a call whose signature verifies and whose timestamp is fresh.
pub async fn authenticate(
    state: &AppState,
    call: &Call,
    request: &Request,
) -> Result<Arc<App>, TopError> {
    let sys = &request.sys;
    // The demo app exists for the sandbox alone: a gateway started without --sandbox on a
    // directory a sandbox once used must not take its calls (its secret was printed).
    if sys.app_key == crate::sandbox::DEMO_APP_KEY && !state.config.sandbox {
        return Err(TopError::new(ErrorCode::InvalidAppKey).with_sub(
            "isv.appkey-not-exists",
            "the sandbox demo app works only while the gateway runs with --sandbox",
        ));
    }
    let app = state
        .apps
        .get(state.store.as_ref(), &sys.app_key)
        .await
        .map_err(|e| TopError::service_unavailable(format!("服务暂不可用, 请重试: {e}")))?;
    let app = match app {
        Some(a) if a.enabled => a,
        Some(_) => {
            return Err(TopError::new(ErrorCode::InvalidAppKey).with_sub(
                "isv.appkey-disabled",
                format!("app `{}` is disabled", echo(&sys.app_key)),
            ))
        }
        None => {
            return Err(TopError::new(ErrorCode::InvalidAppKey).with_sub(
                "isv.appkey-not-exists",
                format!("app `{}` does not exist", echo(&sys.app_key)),
            ))
        }
    };
    let signed = sign::string_to_sign(request.params.iter());
    let matches = app.secrets_at(call.now.epoch_millis()).any(|secret| {
        sign::sign_matches(
            &sign::digest(sys.sign_method, secret.as_bytes(), &signed),
            &sys.sign,
        )
    });
    if !matches {
        let hint = if state.config.sandbox {
            let shown = sign::Signature {
                method: sys.sign_method,
                string_to_sign: signed,
                sign: String::new(),
            }
            .explain();
            format!("sandbox: the gateway signed `{shown}` with {}; compare it with the string you signed", sys.sign_method)
        } else {
            format!(
                "the sign does not match ({}, parameters sorted by key)",
                sys.sign_method
            )
        };
        return Err(
            TopError::new(ErrorCode::InvalidSignature).with_sub("isv.invalid-signature", hint)
        );
    }
    sys.check_skew(call.now, state.config.skew())?;
    Ok(app)
}
