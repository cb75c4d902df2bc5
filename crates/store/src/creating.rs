//! Making a new database so that a crash never leaves half of one under its
//! name: it is made under a temporary name beside it,
//! `.NAME.PID.NANOS.N.creating`, and moved into place once whole. What a
//! crash leaves is only such a temporary name, which the next open of the
//! same database removes once its owner is dead ([`sweep`]).
//!
//! Used by redb, which writes a new file's header in steps; it handles
//! folders too. (sled was tried and left out: a folder made under a
//! temporary name and opened again in place was found corrupt by the
//! creation kill sweep, by the snapshot sled writes on that second open;
//! `SledStore::open` clears what such kills leave instead, see
//! `docs/choosing-a-backend.md`.)
//! This module must not know any backend's format.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Result;

/// How old a temporary name of a database being made must be before it is
/// taken for a crash's leftover where the owner's liveness cannot be told
/// (no `/proc`): making one takes milliseconds.
const STALE: std::time::Duration = std::time::Duration::from_secs(600);

/// The folder that holds `path` and its file name.
pub(crate) fn dir_and_name(path: &Path) -> (&Path, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, name)
}

/// A temporary name for database `name` in `dir`, unique to this call:
/// `.NAME.PID.NANOS.N.creating`.
pub(crate) fn temporary_name(dir: &Path, name: &str) -> PathBuf {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let n = MADE.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{nanos}.{n}.creating", std::process::id()))
}

/// The owner's pid in `file_name` if it is a temporary name of database
/// `name` being made (`.NAME.PID.NANOS.N.creating`).
pub(crate) fn owner(file_name: &str, name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_prefix(name)?.strip_prefix('.')?;
    let mut parts = rest.strip_suffix(".creating")?.split('.');
    let pid = parts.next()?.parse().ok()?;
    let numbers = parts.map(|p| p.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
    (numbers.len() == 2).then_some(pid)
}

/// Removes what crashes while making database `name` in `dir` left, best
/// effort: temporary files or folders whose owner is dead, the spill
/// folders' rule (`scratch.rs`), or, where that cannot be told, older than
/// [`STALE`]. Run on every open, not only when making the database: a
/// restart soon after a crash finds the database made and would not make
/// it again.
pub(crate) fn sweep(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|f| owner(f, name)) else {
            continue;
        };
        let stale = match crate::scratch::is_alive(pid) {
            Some(alive) => !alive,
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE),
        };
        if stale {
            remove(&entry.path());
        }
    }
}

/// Removes a temporary file or folder, best effort.
pub(crate) fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// Makes a new name in `dir` durable. Filesystems that cannot sync a
/// folder (some FUSE and network mounts say so) are left to their own
/// pace; other errors are errors.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    match std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) => {}
        other => other?,
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn temporary_names_parse_back_to_their_owner() {
        let dir = Path::new("/d");
        let tmp = super::temporary_name(dir, "blocks.redb");
        let file = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(super::owner(file, "blocks.redb"), Some(std::process::id()));
        assert_ne!(super::temporary_name(dir, "blocks.redb"), tmp);
        assert_eq!(super::owner(file, "blocks"), None);
        assert_eq!(super::owner(".blocks.redb.1.2.creating", "blocks.redb"), None);
        assert_eq!(super::owner(".blocks.redb.1.2.3.4.creating", "blocks.redb"), None);
        assert_eq!(super::dir_and_name(Path::new("x.redb")), (Path::new("."), "x.redb".into()));
    }
}
