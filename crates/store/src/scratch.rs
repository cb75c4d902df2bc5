//! Scratch folders for spill stores: named after the owning process,
//! removed on drop, and swept when their owner is gone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The prefix of every scratch folder's name; the full name is
/// `atrepo-spill-<pid>-<sequence>`.
pub const SCRATCH_PREFIX: &str = "atrepo-spill-";

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A folder that is removed, with everything in it, when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a fresh scratch folder under `parent` (created if missing).
    pub(crate) fn create(parent: &Path) -> io::Result<ScratchDir> {
        fs::create_dir_all(parent)?;
        let pid = std::process::id();
        loop {
            let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("{SCRATCH_PREFIX}{pid}-{n}"));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                // Left by an earlier process with our pid: pick the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Nothing useful can be done with an error here; a folder left
        // behind is swept by the next `clean_stale` once we have exited.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The pid in a scratch folder's name, if `name` is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(SCRATCH_PREFIX)?;
    let (pid, seq) = rest.split_once('-')?;
    seq.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether process `pid` is alive. `None` where this cannot be told
/// (no `/proc`), in which case nothing is removed.
pub(crate) fn is_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

/// Removes the scratch folders under `parent` whose owning process is no
/// longer alive (left by a run that crashed or was killed), and returns how
/// many it removed.
///
/// Folders of live processes, including this one, are left alone. Only on
/// Linux, where `/proc/<pid>` tells whether a process lives; elsewhere this
/// removes nothing. A missing `parent` is not an error.
///
/// # Errors
///
/// An I/O error if `parent` cannot be listed or a stale folder cannot be
/// removed.
pub fn clean_stale(parent: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(owner_pid) else { continue };
        if pid == std::process::id() || is_alive(pid) != Some(false) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            match fs::remove_dir_all(entry.path()) {
                Ok(()) => removed += 1,
                // Another process swept it first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_only_our_names() {
        assert_eq!(owner_pid("atrepo-spill-123-0"), Some(123));
        assert_eq!(owner_pid("atrepo-spill-123"), None);
        assert_eq!(owner_pid("atrepo-spill-x-1"), None);
        assert_eq!(owner_pid("other-123-1"), None);
    }
}
