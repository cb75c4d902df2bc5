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
//! and sweeping by pid would remove a live process's folder.
//!
//! A folder gets its name only once locked: it is made as
//! `atrepo-spill-making-<pid>-<n>`, locked, then renamed
//! ([`ScratchDir::create`]). So a folder under its name whose lock is free
//! has an owner that is gone for good, and the sweep removes it at once;
//! a folder still under its making name is swept only once
//! [`MAKING_STALE`] old (its owner was killed in those microseconds).
//!
//! Where locks do not work (a file system or platform that refuses them,
//! such as NFS without a lock daemon), folders have no lock file and the
//! sweep falls back to the pid rule, on Linux only. On NFS and SMB, Linux
//! emulates `flock` with POSIX locks, which do not conflict within one
//! process: folders named after this process are therefore never swept by
//! it (they are its own, or left by an earlier process with the same pid,
//! which other processes sweep).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The prefix of every scratch folder's name; the full name is
/// `atrepo-spill-<pid>-<sequence>`.
pub const SCRATCH_PREFIX: &str = "atrepo-spill-";

/// The prefix of a scratch folder's name while it is being made, before it
/// is locked: `atrepo-spill-making-<pid>-<sequence>`. The sweep leaves such
/// a folder until it is a minute old (its owner may be alive in another PID
/// namespace, making it).
pub const SCRATCH_MAKING_PREFIX: &str = "atrepo-spill-making-";

/// The file in each scratch folder its owner holds locked while it lives.
pub const SCRATCH_LOCK_FILE: &str = ".owner.lock";

/// How old a folder under its making name must be before the sweep takes
/// it for a leftover: making one takes microseconds.
const MAKING_STALE: Duration = Duration::from_secs(60);

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A folder that is removed, with everything in it, when dropped.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
    /// The held lock on [`SCRATCH_LOCK_FILE`]; `None` where locks do not
    /// work there (the folder is then swept by the pid rule).
    lock: Option<File>,
}

/// Most names [`ScratchDir::create`] tries before it gives up: an attempt
/// fails only if a folder of that name exists, or the folder was swept
/// while being made (by a sweep that took it for stale).
const CREATE_ATTEMPTS: u32 = 1000;

impl ScratchDir {
    /// Creates a fresh scratch folder under `parent` (created if missing):
    /// made under its making name, locked, then renamed to its name, so
    /// that it never appears under its name unlocked.
    pub(crate) fn create(parent: &Path) -> io::Result<ScratchDir> {
        fs::create_dir_all(parent)?;
        let pid = std::process::id();
        for _ in 0..CREATE_ATTEMPTS {
            let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("{SCRATCH_PREFIX}{pid}-{n}"));
            let making = parent.join(format!("{SCRATCH_MAKING_PREFIX}{pid}-{n}"));
            // Left by an earlier process with our pid: pick the next name.
            if fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            match fs::create_dir(&making) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            let made = lock(&making).and_then(|lock| {
                fs::rename(&making, &path)?;
                Ok(lock)
            });
            match made {
                Ok(lock) => return Ok(ScratchDir { path, lock }),
                // Swept while being made: the next name.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // The name was taken meanwhile (by a process with our pid
                // and sequence in another PID namespace): the next name.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                    ) =>
                {
                    let _ = fs::remove_dir_all(&making);
                    continue;
                }
                Err(e) => {
                    let _ = fs::remove_dir_all(&making);
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

/// Makes folder `dir`'s [`SCRATCH_LOCK_FILE`] and locks it. Where locks do
/// not work there (any error but "held"), the file is removed again, so
/// that no sweep whose locks work takes the folder for unowned, and the
/// folder goes without: `None`.
///
/// # Errors
///
/// `NotFound` if the folder was removed meanwhile (also when a sweep holds
/// the new file's lock: it is removing the folder); other I/O errors as
/// they come.
fn lock(dir: &Path) -> io::Result<Option<File>> {
    let path = dir.join(SCRATCH_LOCK_FILE);
    let file = File::options().read(true).write(true).create_new(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => {
            Err(io::Error::new(io::ErrorKind::NotFound, "swept while being made"))
        }
        Err(fs::TryLockError::Error(_)) => {
            drop(file);
            fs::remove_file(&path)?;
            Ok(None)
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // The lock goes first, then the folder. Nothing useful can be done
        // with an error here; a folder left behind is swept by the next
        // `clean_stale` of another process.
        drop(self.lock.take());
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The pid in a scratch folder's name, and whether it is a making name,
/// if `name` is one of either.
fn owner_pid(name: &str) -> Option<(u32, bool)> {
    let (rest, making) = match name.strip_prefix(SCRATCH_MAKING_PREFIX) {
        Some(rest) => (rest, true),
        None => (name.strip_prefix(SCRATCH_PREFIX)?, false),
    };
    let (pid, seq) = rest.split_once('-')?;
    seq.parse::<u64>().ok()?;
    Some((pid.parse().ok()?, making))
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

/// Whether the owner of scratch folder `dir`, named after `pid`, is gone.
/// Never for this process's pid. A folder under its name: nobody holds its
/// [`SCRATCH_LOCK_FILE`]'s lock; without that file, or where locks do not
/// work, `pid` is not a live process here (Linux only). A folder under its
/// making name: [`MAKING_STALE`] old, and its lock not held.
fn owner_gone(dir: &Path, pid: u32, making: bool) -> io::Result<bool> {
    if pid == std::process::id() {
        return Ok(false);
    }
    if making {
        let age = fs::symlink_metadata(dir)?.modified()?.elapsed().unwrap_or_default();
        if age < MAKING_STALE {
            return Ok(false);
        }
    }
    let by_pid = || making || is_alive(pid) == Some(false);
    // Read-only is enough to lock, and works on another user's file.
    let file = match File::open(dir.join(SCRATCH_LOCK_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(by_pid()),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        // Released when this returns: a folder under its name was locked
        // before it got it, so once free it stays free.
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(_)) => Ok(by_pid()),
    }
}

/// Removes the scratch folders under `parent` whose owning process is gone
/// (left by a run that crashed or was killed), and returns how many it
/// removed.
///
/// A folder's owner is gone when nobody holds the lock on its
/// [`SCRATCH_LOCK_FILE`], which tells across PID namespaces (containers
/// sharing `parent`) and on every platform that locks files. A folder
/// without that file falls back to its owner's pid, on Linux only, where
/// `/proc/<pid>` tells whether a process lives; elsewhere it is left. A
/// folder still under its making name goes only once a minute old.
/// Folders named after this process are left alone (see the module
/// docs). A missing `parent` is not an error.
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
        let Some((pid, making)) = entry.file_name().to_str().and_then(owner_pid) else {
            continue;
        };
        if !entry.file_type()?.is_dir() {
            continue;
        }
        // A folder whose owner cannot be judged (swept meanwhile, or its
        // lock file not readable by this user) is left alone.
        let Ok(gone) = owner_gone(&entry.path(), pid, making) else { continue };
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
        assert_eq!(owner_pid("atrepo-spill-123-0"), Some((123, false)));
        assert_eq!(owner_pid("atrepo-spill-making-123-0"), Some((123, true)));
        assert_eq!(owner_pid("atrepo-spill-123"), None);
        assert_eq!(owner_pid("atrepo-spill-x-1"), None);
        assert_eq!(owner_pid("atrepo-spill-making-x-1"), None);
        assert_eq!(owner_pid("other-123-1"), None);
    }

    /// A folder under its making name is left while young, whatever its
    /// lock, and swept once stale unless its lock is held.
    #[test]
    fn making_folders_are_swept_only_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 is alive: only the making rules decide.
        let young = dir.path().join(format!("{SCRATCH_MAKING_PREFIX}1-0"));
        fs::create_dir(&young).unwrap();
        assert_eq!(clean_stale(dir.path()).unwrap(), 0);
        assert!(young.exists());

        let old = dir.path().join(format!("{SCRATCH_MAKING_PREFIX}1-1"));
        fs::create_dir(&old).unwrap();
        let held = dir.path().join(format!("{SCRATCH_MAKING_PREFIX}1-2"));
        fs::create_dir(&held).unwrap();
        let lock = File::create(held.join(SCRATCH_LOCK_FILE)).unwrap();
        lock.try_lock().unwrap();
        let long_ago = std::time::SystemTime::now() - MAKING_STALE * 2;
        for folder in [&old, &held] {
            File::open(folder).unwrap().set_modified(long_ago).unwrap();
        }
        assert_eq!(clean_stale(dir.path()).unwrap(), 1);
        assert!(!old.exists());
        assert!(held.exists(), "a making folder whose lock is held was removed");
        assert!(young.exists());
    }

    /// A folder is made under its making name and appears under its name
    /// locked, with no making folder left.
    #[test]
    fn a_new_folder_appears_under_its_name_locked() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = ScratchDir::create(dir.path()).unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(owner_pid(&names[0]).map(|(_, making)| making), Some(false));
        let file = File::open(scratch.path().join(SCRATCH_LOCK_FILE)).unwrap();
        assert!(matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock)));
        let path = scratch.path().to_owned();
        drop(scratch);
        assert!(!path.exists());
    }
}
