//! Scratch folders for spill stores: named after the owning process,
//! locked by it while it lives, removed on drop, and swept when their
//! owner is gone.
//!
//! Whether the owner is gone is told by a lock, not by its pid: each
//! folder holds a file, [`SCRATCH_LOCK_FILE`], on which its owner holds an
//! exclusive lock (`flock` on Unix, `LockFileEx` on Windows) for as long
//! as the folder is in use; the system drops it when the process ends,
//! however it ends. A pid says nothing across PID namespaces: two
//! containers sharing a parent folder each see the other's pids as dead,
//! and sweeping by pid would remove a live process's folder. Folders
//! without the file (made by an older atrepo, or caught between being
//! made and being locked, see [`ScratchDir::create`]) fall back to the pid
//! rule (Linux only).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The prefix of every scratch folder's name; the full name is
/// `atrepo-spill-<pid>-<sequence>`.
pub const SCRATCH_PREFIX: &str = "atrepo-spill-";

/// The file in each scratch folder its owner holds locked while it lives.
pub const SCRATCH_LOCK_FILE: &str = ".owner.lock";

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A folder that is removed, with everything in it, when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
    /// The held lock on [`SCRATCH_LOCK_FILE`]; `None` where the platform cannot
    /// lock files (the folder is then swept by the pid rule).
    lock: Option<File>,
}

/// Most names [`ScratchDir::create`] tries before it gives up: each
/// attempt fails only if a folder of that name exists or another process
/// swept the new folder before it was locked.
const CREATE_ATTEMPTS: u32 = 1000;

impl ScratchDir {
    /// Creates a fresh scratch folder under `parent` (created if missing)
    /// and locks it.
    ///
    /// A sweeper in another PID namespace may remove the folder between
    /// its making and its locking (it sees no lock file, and a pid it
    /// takes for dead): the lock file is checked to be still in place
    /// once locked, and if not, the next name is tried.
    pub(crate) fn create(parent: &Path) -> io::Result<ScratchDir> {
        fs::create_dir_all(parent)?;
        let pid = std::process::id();
        for _ in 0..CREATE_ATTEMPTS {
            let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("{SCRATCH_PREFIX}{pid}-{n}"));
            match fs::create_dir(&path) {
                Ok(()) => {}
                // Left by an earlier process with our pid: pick the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            match lock(&path) {
                Ok(lock) => return Ok(ScratchDir { path, lock }),
                // Swept before it was locked: the next name.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let _ = fs::remove_dir_all(&path);
                    return Err(e);
                }
            }
        }
        Err(io::Error::other(format!(
            "no scratch folder could be made under {} in {CREATE_ATTEMPTS} attempts",
            parent.display()
        )))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes and locks folder `dir`'s [`SCRATCH_LOCK_FILE`], and checks that the
/// locked file is still the one at that path (a sweeper may have removed
/// the folder in between). `None` where the platform cannot lock files.
///
/// # Errors
///
/// `NotFound` if the folder or its lock file was removed meanwhile;
/// other I/O errors as they come.
fn lock(dir: &Path) -> io::Result<Option<File>> {
    let path = dir.join(SCRATCH_LOCK_FILE);
    let file = File::options().read(true).write(true).create_new(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            return Ok(None);
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
        // A sweeper holds it: it is about to remove the folder.
        Err(fs::TryLockError::WouldBlock) => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "swept while being made"));
        }
    }
    if !same_file(&file, &path)? {
        return Err(io::Error::new(io::ErrorKind::NotFound, "swept while being made"));
    }
    Ok(Some(file))
}

/// Whether open `file` is the file at `path` now (`false` if there is
/// none).
fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let now = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let held = file.metadata()?;
        Ok(held.dev() == now.dev() && held.ino() == now.ino())
    }
    #[cfg(not(unix))]
    {
        // Windows cannot remove a file another handle holds open without
        // sharing delete, which std does not ask for: it is still there.
        let _ = (file, now);
        Ok(true)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // The lock file is closed first: Windows does not remove a file
        // that is open. Nothing useful can be done with an error here; a
        // folder left behind is swept by the next `clean_stale`.
        drop(self.lock.take());
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

/// Whether the owner of scratch folder `dir`, named after `pid`, is gone:
/// nobody holds its [`SCRATCH_LOCK_FILE`]'s lock (on every platform that locks
/// files); or, for a folder without one, `pid` is not a live process here
/// (Linux only, and never this process).
fn owner_gone(dir: &Path, pid: u32) -> io::Result<bool> {
    let by_pid = || pid != std::process::id() && is_alive(pid) == Some(false);
    // Read-only is enough to lock, and works on another user's file.
    let file = match File::open(dir.join(SCRATCH_LOCK_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(by_pid()),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        // Released when this returns: no new owner takes an existing
        // folder (names are made fresh), so nothing can take it back.
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(by_pid()),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Removes the scratch folders under `parent` whose owning process is gone
/// (left by a run that crashed or was killed), and returns how many it
/// removed.
///
/// A folder's owner is gone when nobody holds the lock on its
/// [`SCRATCH_LOCK_FILE`], which tells across PID namespaces (containers sharing
/// `parent`) and on every platform that locks files. A folder without
/// that file falls back to its owner's pid, on Linux only, where
/// `/proc/<pid>` tells whether a process lives; elsewhere it is left.
/// Folders of live processes, including this one, are left alone. A
/// missing `parent` is not an error.
///
/// # Errors
///
/// An I/O error if `parent` cannot be listed or a stale folder cannot be
/// removed (a folder whose lock file cannot be read is left, not an
/// error).
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
        if !entry.file_type()?.is_dir() {
            continue;
        }
        // A folder whose owner cannot be judged (swept meanwhile, or its
        // lock file not readable by this user) is left alone.
        let Ok(gone) = owner_gone(&entry.path(), pid) else { continue };
        if gone {
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
