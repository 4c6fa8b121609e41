//! The database's files: created only when asked, and watched, so that a database removed or
//! replaced under a running store stops it instead of taking calls into files nobody can find.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Creates `dir` (mode 0700) when missing and the file `path` in it (mode 0600) holding
/// `contents` when missing, whatever the umask: the database and the master key are for the
/// gateway's eyes only. (SQLite gives the WAL and the shared-memory file the database's mode.)
pub fn create_private(dir: &Path, path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let unavailable = |what: &Path, e: std::io::Error| {
        StoreError::Unavailable(format!("cannot create {}: {e}", what.display()))
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| unavailable(dir, e))?;
        // The mode given is cut by the umask; this one is not.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| unavailable(dir, e))?;
    }
    if !path.exists() {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| unavailable(path, e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| unavailable(path, e))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|e| unavailable(path, e))?;
    }
    Ok(())
}

/// Warns when the data directory or the database can be read by other users.
pub(super) fn warn_if_open(dir: &Path, path: &Path) {
    for (what, mode) in [(dir, 0o700), (path, 0o600)] {
        if let Ok(m) = std::fs::metadata(what) {
            if m.mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %what.display(),
                    mode = format!("{:o}", m.mode() & 0o777),
                    "other users can read this; `chmod {mode:o}` it"
                );
            }
        }
    }
}

/// Refuses to go on when `path` holds no database and `create` is off: starting on an empty
/// database where one is expected (a mistyped directory, a deleted one) would hide every
/// acknowledged call from the operator.
pub(super) fn require(path: &Path, create: bool) -> Result<(), StoreError> {
    if create || path.exists() {
        return Ok(());
    }
    Err(StoreError::Missing(path.to_path_buf()))
}

/// The database file as it was opened: its device and inode.
pub(super) struct Identity {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Identity {
    pub(super) fn of(path: &Path) -> Result<Identity, StoreError> {
        let m = std::fs::metadata(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot stat {}: {e}", path.display())))?;
        Ok(Identity {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Why the file at the path is no longer the one opened, if it is not.
    pub(super) fn changed(&self) -> Option<String> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => None,
            Ok(_) => Some(format!(
                "the database file {} was replaced while the gateway ran",
                self.path.display()
            )),
            Err(e) => Some(format!(
                "the database file {} is gone ({e})",
                self.path.display()
            )),
        }
    }
}

/// Why an open file (the WAL) has been unlinked, if it has: what is written to it then is
/// written nowhere anyone will find.
pub(super) fn unlinked(file: &File, name: &str) -> Option<String> {
    match file.metadata() {
        Ok(m) if m.nlink() > 0 => None,
        Ok(_) => Some(format!("{name} was removed while the gateway ran")),
        Err(e) => Some(format!("cannot stat {name}: {e}")),
    }
}
