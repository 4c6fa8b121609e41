//! Sandbox mode: what a partner engineer needs to send a first call within a minute.

use loanwire_store::{Store, StoreError};

use crate::apps::{self, NewApp};
use crate::operators::gateway_actor;

pub const DEMO_APP_KEY: &str = "10000001";

pub struct Sandbox {
    pub app_key: String,
    pub secret: String,
}

/// Makes sure the demo app exists (and is enabled), and returns its credentials.
pub async fn ensure_demo_app(store: &dyn Store) -> Result<Sandbox, StoreError> {
    let app = match store.app(DEMO_APP_KEY).await? {
        Some(a) if a.enabled => a,
        Some(_) => apps::set_enabled(store, DEMO_APP_KEY, true, &gateway_actor()).await?,
        None => {
            apps::create(
                store,
                NewApp {
                    name: "sandbox demo".into(),
                    app_key: Some(DEMO_APP_KEY.into()),
                    ..NewApp::default()
                },
                &gateway_actor(),
            )
            .await?
        }
    };
    Ok(Sandbox {
        app_key: app.app_key,
        secret: app.secret,
    })
}
