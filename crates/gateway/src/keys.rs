//! The master keys that seal secrets at rest (SPEC 5): where they come from, and their rotation.
//!
//! Keys come from `LOANWIRE_MASTER_KEY` or a key file (`master_key_file`, else
//! `DATA_DIR/master.key`), one base64 key per line or comma-separated: the first seals, all open.
//! A gateway reading a key file reads it again when it meets a secret none of its keys opens,
//! and before it seals one, so that `loanwire keys rotate`, run beside it, needs no restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loanwire_store::secrets::{parse_keys, MasterKey, SecretBox};
use loanwire_store::sqlite::{files, DB_FILE};
use loanwire_store::StoreError;

use crate::config::Config;

/// Where the master keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `LOANWIRE_MASTER_KEY`: fixed for the life of the process.
    Env,
    /// A key file, read again when it may have changed.
    File(PathBuf),
}

/// The file the master keys are read from: the configured one, else `DATA_DIR/master.key`.
pub fn key_file(config: &Config) -> PathBuf {
    config
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("master.key"))
}

fn invalid(m: String) -> StoreError {
    StoreError::Invalid(m)
}

fn read_key_file(path: &Path) -> Result<Vec<MasterKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the master key {}: {e}", path.display()))?;
    parse_keys(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Why PostgreSQL cannot be opened without a master key.
pub const MISSING_PG_KEY: &str = "PostgreSQL needs a master key to seal app secrets: LOANWIRE_MASTER_KEY or master_key_file, the same for every instance";

/// The master keys and where they come from. On SQLite without any, a new key is written to
/// `DATA_DIR/master.key` (mode 0600) when the database is being created or exists already (its
/// secrets are then sealed at start); `None` when it neither exists nor is to be created
/// (opening it then fails with its own message).
pub fn load(config: &Config) -> Result<Option<(Vec<MasterKey>, KeySource)>, StoreError> {
    if let Some(text) = &config.master_key {
        let keys = parse_keys(text).map_err(|e| invalid(format!("LOANWIRE_MASTER_KEY: {e}")))?;
        return Ok(Some((keys, KeySource::Env)));
    }
    let path = key_file(config);
    if path.exists() || config.master_key_file.is_some() {
        let keys = read_key_file(&path).map_err(invalid)?;
        return Ok(Some((keys, KeySource::File(path))));
    }
    if config.database.is_some() {
        // Every instance must share one key: none is made up here (`loanwire app create`
        // would otherwise seal a secret under a key nobody keeps).
        return Err(invalid(MISSING_PG_KEY.into()));
    }
    if !(config.init || config.sandbox || config.data_dir.join(DB_FILE).exists()) {
        return Ok(None);
    }
    let key = MasterKey::generate();
    files::create_private(
        &config.data_dir,
        &path,
        key_file_text(std::slice::from_ref(&key)).as_bytes(),
    )?;
    tracing::info!(path = %path.display(), "created the master key that seals app secrets; back it up with the database");
    Ok(Some((vec![key], KeySource::File(path))))
}

/// The box that seals secrets under the configured keys, following the key file.
pub fn secret_box(config: &Config) -> Result<Option<Arc<SecretBox>>, StoreError> {
    let Some((keys, source)) = load(config)? else {
        return Ok(None);
    };
    let reload = match source {
        KeySource::Env => None,
        KeySource::File(path) => {
            Some(Box::new(move || read_key_file(&path)) as loanwire_store::secrets::KeyReload)
        }
    };
    Ok(Some(Arc::new(SecretBox::with_keys(&keys, reload))))
}

fn key_file_text(keys: &[MasterKey]) -> String {
    let mut text = String::from(
        "# loanwire master keys: the first seals, every one opens (`loanwire keys rotate`).\n",
    );
    for k in keys {
        text.push_str(&k.to_base64());
        text.push('\n');
    }
    text
}

/// Puts a new key first in the key file, keeping the others (secrets still sealed under them,
/// and gateways not yet aware of the new key, go on working); how many keys the file now holds.
/// The file is replaced whole (written beside it, synced, renamed), never left half-written.
pub fn add_key_to_file(path: &Path) -> Result<usize, StoreError> {
    let mut keys = read_key_file(path).map_err(invalid)?;
    keys.insert(0, MasterKey::generate());
    let dir = path.parent().unwrap_or(Path::new("."));
    let next = path.with_extension(format!("new-{}", std::process::id()));
    let _ = std::fs::remove_file(&next);
    files::create_private(dir, &next, key_file_text(&keys).as_bytes())?;
    std::fs::rename(&next, path)
        .map_err(|e| StoreError::Unavailable(format!("cannot replace {}: {e}", path.display())))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(keys.len())
}
