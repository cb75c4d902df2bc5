//! Entry points for fuzzing and out-of-crate tests.
//!
//! Not part of the public API: anything here may change in any release.

/// Fuzz bodies: each takes arbitrary bytes and must never panic.
pub mod fuzzing {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use cid::Cid;
    use cid::multihash::Multihash;

    use crate::{
        Backend, Batch, BlockStore, Bytes, OpenOptions, SpillOptions, SpillStore, StoreSpec,
        open_with,
    };

    /// How many distinct blocks the operations draw from: few, so that
    /// duplicates and hits are common.
    const POOL: u8 = 16;
    /// Most operations one input runs.
    const MAX_OPS: usize = 48;

    /// Where a model run stores its blocks.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Target {
        /// A backend opened durable (memory included).
        Plain(Backend),
        /// A spill store with a 4 KiB memory budget spilling to a backend.
        Spill(Backend),
    }

    impl Target {
        /// Every target compiled into this build.
        pub fn compiled() -> Vec<Target> {
            let mut out = vec![Target::Plain(Backend::Memory)];
            for backend in [Backend::Redb, Backend::Sqlite, Backend::Sled] {
                if backend.is_compiled() {
                    out.push(Target::Plain(backend));
                    out.push(Target::Spill(backend));
                }
            }
            out
        }
    }

    /// Pool block `i`: sizes from empty to 12 KiB. CIDs are made up (stores
    /// never hash what they are given).
    fn pool_block(i: u8) -> (Cid, Bytes) {
        let i = i % POOL;
        let len = match i {
            0 => 0,
            15 => 12 * 1024,
            _ => usize::from(i).saturating_mul(173),
        };
        let digest = [i; 32];
        let cid = match Multihash::wrap(0x12, &digest) {
            Ok(mh) => Cid::new_v1(0x55, mh),
            Err(_) => Cid::default(),
        };
        (cid, Bytes::from(vec![i; len]))
    }

    /// A fresh folder under the system's temporary folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> std::io::Result<TempDir> {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("atrepo-store-model-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            Ok(TempDir(dir))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open(target: Target, dir: &TempDir) -> crate::Result<Box<dyn BlockStore>> {
        match target {
            Target::Plain(Backend::Memory) => Ok(Box::new(crate::MemoryStore::new())),
            Target::Plain(backend) => {
                let spec = StoreSpec::at(backend, dir.0.join(format!("blocks.{backend}")));
                open_with(&spec, &OpenOptions::default())
            }
            Target::Spill(backend) => {
                let options =
                    SpillOptions::default().parent(&dir.0).memory_limit(4096).target(backend)?;
                Ok(Box::new(SpillStore::new(options)?))
            }
        }
    }

    /// Checks `store` against the model: every pool block, and the usage.
    fn compare(store: &dyn BlockStore, model: &BTreeMap<Cid, Bytes>, step: usize, target: Target) {
        for i in 0..POOL {
            let (cid, _) = pool_block(i);
            let got = store.get(&cid);
            assert_eq!(
                got.as_ref().ok().cloned().flatten().as_ref(),
                model.get(&cid),
                "{target:?}: get {i} after step {step}"
            );
            assert_eq!(store.has(&cid).ok(), Some(model.contains_key(&cid)), "{target:?}: has {i}");
        }
        let usage = store.usage().ok();
        let payload: u64 = model.values().map(|b| b.len() as u64).sum();
        assert_eq!(
            usage.map(|u| u.blocks),
            Some(model.len() as u64),
            "{target:?}: blocks after step {step}"
        );
        assert_eq!(
            usage.map(|u| u.payload_bytes),
            Some(payload),
            "{target:?}: payload after step {step}"
        );
    }

    /// Runs the operations `data` spells on `target` and on a `BTreeMap`
    /// model of the `BlockStore` contract, comparing them after every step
    /// and with a full scan at the end. Operations: put, put a CID with
    /// another block's bytes (the first bytes win), write a batch, flush,
    /// and close-and-reopen (for durable backends).
    pub fn blockstore_model_on(target: Target, data: &[u8]) {
        let Ok(dir) = TempDir::new() else { return };
        let opened = open(target, &dir);
        assert!(opened.is_ok(), "{target:?}: open: {:?}", opened.as_ref().err());
        let Ok(mut store) = opened else { return };
        let durable = matches!(target, Target::Plain(b) if b != Backend::Memory);
        let mut model: BTreeMap<Cid, Bytes> = BTreeMap::new();
        let mut bytes = data.iter().copied();
        let mut step = 0usize;
        while let Some(op) = bytes.next() {
            if step >= MAX_OPS {
                break;
            }
            let arg = bytes.next().unwrap_or(0);
            match op % 8 {
                0..=2 => {
                    let (cid, block) = pool_block(arg);
                    assert!(store.put(cid, block.clone()).is_ok(), "{target:?}: put");
                    model.entry(cid).or_insert(block);
                }
                3 => {
                    let (cid, _) = pool_block(arg);
                    let (_, block) = pool_block(arg >> 4);
                    assert!(store.put(cid, block.clone()).is_ok(), "{target:?}: put conflicting");
                    model.entry(cid).or_insert(block);
                }
                4 | 5 => {
                    let n = usize::from(arg % 8);
                    let blocks: Vec<_> = bytes.by_ref().take(n).map(pool_block).collect();
                    let batch: Batch = blocks.iter().cloned().collect();
                    assert!(store.write(batch).is_ok(), "{target:?}: batch");
                    for (cid, block) in blocks {
                        model.entry(cid).or_insert(block);
                    }
                }
                6 => assert!(store.flush().is_ok(), "{target:?}: flush"),
                _ if durable => {
                    drop(store);
                    let reopened = open(target, &dir);
                    assert!(reopened.is_ok(), "{target:?}: reopen: {:?}", reopened.as_ref().err());
                    let Ok(again) = reopened else { return };
                    store = again;
                }
                _ => {}
            }
            compare(&*store, &model, step, target);
            step = step.saturating_add(1);
        }
        let mut scanned = BTreeMap::new();
        let scan = store.scan(&mut |cid, bytes| {
            scanned.insert(*cid, Bytes::copy_from_slice(bytes));
            Ok(())
        });
        assert!(scan.is_ok(), "{target:?}: scan");
        assert_eq!(scanned, model, "{target:?}: scan differs from the model");
    }

    /// [`blockstore_model_on`] with the target picked by the first byte
    /// among the compiled ones.
    pub fn blockstore_model(data: &[u8]) {
        let targets = Target::compiled();
        let Some((&first, rest)) = data.split_first() else { return };
        let pick = usize::from(first) % targets.len().max(1);
        if let Some(&target) = targets.get(pick) {
            blockstore_model_on(target, rest);
        }
    }
}
