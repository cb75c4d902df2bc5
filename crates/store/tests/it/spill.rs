//! The spill store beyond the conformance suite: when it hands off, what
//! the budget counts, the spilled-bytes cap, and scratch folder hygiene.

use std::path::Path;

use atrepo_store::{
    Backend, BlockStore, Error, ErrorKind, MEMORY_OVERHEAD_PER_BLOCK, SCRATCH_LOCK_FILE,
    SCRATCH_PREFIX, SpillOptions, SpillStore, clean_stale,
};

use crate::conformance::sized_block;

/// A pid that belonged to a process that has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn scratch_dirs(parent: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(SCRATCH_PREFIX))
        .collect();
    names.sort();
    names
}

fn options(parent: &Path) -> SpillOptions {
    SpillOptions::default().parent(parent)
}

#[test]
fn budget_counts_per_block_overhead() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<_> = (0..10).map(|i| sized_block(i, 50)).collect();
    // Exactly ten blocks' payload plus overhead: fits.
    let budget = 10 * (50 + MEMORY_OVERHEAD_PER_BLOCK);
    let store = SpillStore::new(options(dir.path()).memory_limit(budget).no_spill()).unwrap();
    store.write(blocks.iter().cloned().collect()).unwrap();
    assert_eq!(store.usage().unwrap().total_bytes(), budget);
    // One more byte of payload does not.
    let (cid, bytes) = sized_block(99, 1);
    match store.put(cid, bytes) {
        Err(Error::LimitExceeded { what: "memory", limit, actual }) => {
            assert_eq!((limit, actual), (budget, budget + 1 + MEMORY_OVERHEAD_PER_BLOCK));
        }
        other => panic!("expected the memory limit, found {other:?}"),
    }
    // A payload-only count would have taken 500 bytes of a 1000-byte budget.
    let small = SpillStore::new(options(dir.path()).memory_limit(1000).no_spill()).unwrap();
    let err = small.write(blocks.iter().cloned().collect()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert_eq!(small.usage().unwrap().blocks, 0);
}

/// CIDv0 blocks (which a lenient CAR reader passes on) take a bigger slot
/// in memory than a repository's CIDs; the budget counts that bigger slot,
/// or tiny blocks of that shape could take about 1.7 times the budget.
#[test]
fn budget_counts_the_overhead_of_other_cid_shapes() {
    use atrepo_store::{MEMORY_OVERHEAD_PER_OTHER_BLOCK, memory_overhead};
    let dir = tempfile::tempdir().unwrap();
    let v0 = |i: u32| {
        let (cid, bytes) = sized_block(i, 10);
        (cid::Cid::new_v0(*cid.hash()).unwrap(), bytes)
    };
    assert_eq!(memory_overhead(&v0(0).0), MEMORY_OVERHEAD_PER_OTHER_BLOCK);
    let budget = 10 * (10 + MEMORY_OVERHEAD_PER_OTHER_BLOCK);
    let store = SpillStore::new(options(dir.path()).memory_limit(budget).no_spill()).unwrap();
    store.write((0..10).map(v0).collect()).unwrap();
    assert_eq!(store.usage().unwrap().total_bytes(), budget);
    let (cid, bytes) = v0(10);
    match store.put(cid, bytes) {
        Err(Error::LimitExceeded { what: "memory", limit, actual }) => {
            assert_eq!((limit, actual), (budget, budget + 10 + MEMORY_OVERHEAD_PER_OTHER_BLOCK));
        }
        other => panic!("expected the memory limit, found {other:?}"),
    }
    // Counted as a repository's CIDs, 11 (indeed 17) such blocks would
    // have fitted.
    const {
        assert!(
            11 * (10 + MEMORY_OVERHEAD_PER_BLOCK) <= 10 * (10 + MEMORY_OVERHEAD_PER_OTHER_BLOCK)
        );
    };
    let small = SpillStore::new(options(dir.path()).memory_limit(budget).no_spill()).unwrap();
    assert_eq!(small.write((0..11).map(v0).collect()).unwrap_err().kind(), ErrorKind::Limit);
}

#[test]
fn duplicates_cost_nothing_against_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (cid, bytes) = sized_block(1, 100);
    let budget = 100 + MEMORY_OVERHEAD_PER_BLOCK;
    let store = SpillStore::new(options(dir.path()).memory_limit(budget).no_spill()).unwrap();
    for _ in 0..10 {
        store.put(cid, bytes.clone()).unwrap();
    }
    assert_eq!(store.usage().unwrap().blocks, 1);
}

#[test]
fn unspilled_reads_are_the_memory_stores() {
    use atrepo_store::BlockRead;
    let dir = tempfile::tempdir().unwrap();
    let store = SpillStore::new(options(dir.path()).no_spill()).unwrap();
    let (stored, absent) = (sized_block(1, 40), sized_block(2, 40));
    store.put(stored.0, stored.1.clone()).unwrap();
    // The memory store's own answers, not the trait's defaults (which look
    // nothing up ahead).
    let mut present = Vec::new();
    store.look_ahead(&[absent.0, stored.0], &mut present).unwrap();
    assert_eq!(present, [false, true]);
    let mut lent = Vec::new();
    assert!(store.read_with(&stored.0, &mut |b| lent = b.to_vec()).unwrap());
    assert_eq!(lent, stored.1);
    assert!(!store.read_with(&absent.0, &mut |_| panic!("lent a missing block")).unwrap());
}

#[cfg(any(feature = "redb", feature = "sqlite", feature = "sled"))]
mod with_disk {
    use super::*;
    use atrepo_store::BlockRead;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::conformance::{SetOnDrop, blocks};

    fn targets() -> Vec<Backend> {
        [Backend::Redb, Backend::Sqlite, Backend::Sled]
            .into_iter()
            .filter(|b| b.is_compiled())
            .collect()
    }

    #[test]
    fn stays_in_memory_under_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = SpillStore::new(options(dir.path())).unwrap();
        store.write(blocks("small", 100).into_iter().collect()).unwrap();
        assert!(!store.is_spilled());
        assert_eq!(store.scratch_dir(), None);
        assert!(scratch_dirs(dir.path()).is_empty());
    }

    #[test]
    fn hand_off_keeps_every_block_and_the_accounting() {
        for target in targets() {
            let dir = tempfile::tempdir().unwrap();
            let opts = options(dir.path()).memory_limit(64 * 1024).target(target).unwrap();
            let store = SpillStore::new(opts).unwrap();
            let all: Vec<_> = (0..400).map(|i| sized_block(i, 300 + i as usize)).collect();
            let mut spilled_at = None;
            for (n, chunk) in all.chunks(20).enumerate() {
                store.write(chunk.iter().cloned().collect()).unwrap();
                if spilled_at.is_none() && store.is_spilled() {
                    spilled_at = Some(n);
                }
            }
            assert!(spilled_at.is_some_and(|n| n > 0), "{target}: {spilled_at:?}");
            for (cid, bytes) in &all {
                assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes), "{target}");
            }
            let usage = store.usage().unwrap();
            assert_eq!(usage.blocks, 400);
            assert_eq!(usage.payload_bytes, all.iter().map(|(_, b)| b.len() as u64).sum());
        }
    }

    #[test]
    fn scratch_folder_lives_while_spilled_and_goes_on_drop() {
        for target in targets() {
            let dir = tempfile::tempdir().unwrap();
            let opts = options(dir.path()).memory_limit(0).target(target).unwrap();
            let store = SpillStore::new(opts).unwrap();
            store.write(blocks("spill", 10).into_iter().collect()).unwrap();
            let scratch = store.scratch_dir().unwrap();
            assert!(scratch.is_dir());
            let name = scratch.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(name.starts_with(&format!("{SCRATCH_PREFIX}{}-", std::process::id())));
            assert_eq!(scratch_dirs(dir.path()), vec![name]);
            drop(store);
            assert!(!scratch.exists(), "{target}: scratch folder left behind");
        }
    }

    #[test]
    fn spill_cap_is_a_limit_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path()).memory_limit(0).max_spilled(10_000);
        let store = SpillStore::new(opts).unwrap();
        let first: Vec<_> = (0..9).map(|i| sized_block(i, 1000)).collect();
        store.write(first.iter().cloned().collect()).unwrap();
        let second: Vec<_> = (10..12).map(|i| sized_block(i, 1000)).collect();
        match store.write(second.iter().cloned().collect()) {
            Err(
                e @ Error::LimitExceeded { what: "spilled bytes", limit: 10_000, actual: 11_000 },
            ) => {
                assert_eq!(e.kind(), ErrorKind::Limit);
                assert_eq!(
                    e.to_string(),
                    "spilled bytes limit exceeded: limit 10000, needed 11000"
                );
            }
            other => panic!("expected the spill cap, found {other:?}"),
        }
        assert!(!store.has(&second[0].0).unwrap());
        assert_eq!(store.usage().unwrap().blocks, 9);
        // Blocks already stored do not count again.
        store.write(first.iter().cloned().collect()).unwrap();
        store.put(second[0].0, second[0].1.clone()).unwrap();
        assert_eq!(store.usage().unwrap().payload_bytes, 10_000);
    }

    #[test]
    fn spill_cap_applies_at_hand_off() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path()).memory_limit(4096).max_spilled(5000);
        let store = SpillStore::new(opts).unwrap();
        let all: Vec<_> = (0..6).map(|i| sized_block(i, 1000)).collect();
        store.write(all[..2].iter().cloned().collect()).unwrap();
        let err = store.write(all[2..].iter().cloned().collect()).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { what: "spilled bytes", .. }), "{err:?}");
        assert!(!store.is_spilled());
        assert!(scratch_dirs(dir.path()).is_empty());
        assert_eq!(store.usage().unwrap().blocks, 2);
    }

    #[test]
    fn hostile_stream_stops_at_the_cap() {
        // A CAR that would fill the disk: endless distinct blocks.
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path()).memory_limit(256 * 1024).max_spilled(1024 * 1024);
        let store = SpillStore::new(opts).unwrap();
        let mut written = 0u64;
        let err = loop {
            let batch: Vec<_> =
                (0..64).map(|i| sized_block(written as u32 * 64 + i, 2048)).collect();
            match store.write(batch.into_iter().collect()) {
                Ok(()) => written += 1,
                Err(e) => break e,
            }
            assert!(written < 1000, "the cap never fired");
        };
        assert_eq!(err.kind(), ErrorKind::Limit);
        assert!(store.usage().unwrap().payload_bytes <= 1024 * 1024);
    }

    #[test]
    fn readers_see_everything_across_the_hand_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = SpillStore::new(options(dir.path()).memory_limit(32 * 1024)).unwrap();
        let first = blocks("first", 50);
        store.write(first.iter().cloned().collect()).unwrap();
        assert!(!store.is_spilled());
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                while !done.load(Ordering::Acquire) {
                    for (cid, bytes) in &first {
                        assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes));
                    }
                }
            });
            let stop = SetOnDrop(&done);
            for i in 0..50 {
                store.write(blocks(&format!("more{i}"), 20).into_iter().collect()).unwrap();
            }
            drop(stop);
            reader.join().unwrap();
        });
        assert!(store.is_spilled());
    }

    #[test]
    fn stale_folders_of_dead_processes_are_swept_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!("{SCRATCH_PREFIX}{}-0", dead_pid()));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("blocks.redb"), b"left by a crash").unwrap();
        let ours = dir.path().join(format!("{SCRATCH_PREFIX}{}-999999", std::process::id()));
        std::fs::create_dir(&ours).unwrap();
        let init = dir.path().join(format!("{SCRATCH_PREFIX}1-0"));
        std::fs::create_dir(&init).unwrap();
        let unrelated = dir.path().join("atrepo-spill-notes");
        std::fs::create_dir(&unrelated).unwrap();

        let _store = SpillStore::new(options(dir.path())).unwrap();
        assert!(!dead.exists());
        assert!(ours.exists(), "a live process's folder was removed");
        assert!(init.exists(), "a live process's folder was removed");
        assert!(unrelated.exists(), "a folder that is not ours was removed");
    }
}

#[test]
fn clean_stale_of_a_missing_parent_is_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(clean_stale(&dir.path().join("missing")).unwrap(), 0);
}

#[test]
fn clean_stale_counts_what_it_removes() {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..3 {
        std::fs::create_dir(dir.path().join(format!("{SCRATCH_PREFIX}{}-{n}", dead_pid())))
            .unwrap();
    }
    assert_eq!(clean_stale(dir.path()).unwrap(), 3);
    assert!(scratch_dirs(dir.path()).is_empty());
}

#[test]
fn targets_must_be_writable_disk_backends() {
    for backend in [Backend::Memory, Backend::Car] {
        match SpillOptions::default().target(backend) {
            Err(Error::InvalidSpec { spec, .. }) => assert_eq!(spec, backend.name()),
            other => panic!("{backend}: {other:?}"),
        }
    }
    match SpillOptions::default().target_spec("floppy") {
        Err(Error::InvalidSpec { spec, .. }) => assert_eq!(spec, "floppy"),
        other => panic!("{other:?}"),
    }
    for backend in [Backend::Redb, Backend::Sqlite, Backend::Sled] {
        let result = SpillOptions::default().target(backend);
        if backend.is_compiled() {
            assert_eq!(result.unwrap().target, Some(backend));
        } else {
            assert!(
                matches!(result, Err(Error::NotCompiled { backend: b }) if b == backend.name())
            );
        }
    }
}

/// A scratch folder's owner is told alive by the lock on its lock file,
/// not by the pid in its name: across PID namespaces (containers sharing
/// the parent folder) a live owner's pid looks dead, and a dead owner's
/// pid may be a live process here.
#[test]
fn the_lock_not_the_pid_says_whether_a_folder_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: String, lock: bool| {
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("blocks.redb"), b"blocks").unwrap();
        let file = std::fs::File::create(folder.join(SCRATCH_LOCK_FILE)).unwrap();
        if lock {
            file.try_lock().unwrap();
        }
        (folder, file)
    };
    // Named after a dead pid, locked: a live owner in another namespace.
    let (elsewhere, held) = make(format!("{SCRATCH_PREFIX}{}-0", dead_pid()), true);
    // Named after a live pid (init), not locked: its owner is gone.
    let (reused, _unlocked) = make(format!("{SCRATCH_PREFIX}1-7"), false);

    assert_eq!(clean_stale(dir.path()).unwrap(), 1);
    assert!(elsewhere.exists(), "a folder whose lock is held was removed");
    assert!(!reused.exists(), "a folder nobody holds the lock of was kept");

    // Once its owner lets go (as when it dies), it is swept. (A child
    // another test forks holds a copy of every descriptor until it execs,
    // the lock's with it: the sweep may need to look again a moment later,
    // as a real one would at the next spill.)
    drop(held);
    let mut swept = 0;
    for _ in 0..100 {
        swept += clean_stale(dir.path()).unwrap();
        if swept > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(swept, 1);
    assert!(scratch_dirs(dir.path()).is_empty());
}

/// A spilled store's scratch folder holds its lock file, locked: another
/// sweep of the same parent leaves it while the store lives, and the
/// folder goes with the store.
#[cfg(feature = "redb")]
#[test]
fn a_live_spill_folder_is_locked_and_left_by_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let store = SpillStore::new(options(dir.path()).memory_limit(0).target(Backend::Redb).unwrap())
        .unwrap();
    store.write(crate::conformance::blocks("spill", 10).into_iter().collect()).unwrap();
    let scratch = store.scratch_dir().unwrap().to_owned();
    assert_eq!(scratch_dirs(dir.path()).len(), 1);
    let lock = scratch.join(SCRATCH_LOCK_FILE);
    let file = std::fs::File::open(&lock).unwrap();
    assert!(matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
    assert_eq!(clean_stale(dir.path()).unwrap(), 0);
    drop(store);
    assert!(scratch_dirs(dir.path()).is_empty());
}
