//! Model-based property tests: random operation sequences applied to a
//! backend and to a `BTreeMap<Cid, Bytes>` that implements the `BlockStore`
//! contract in the obvious way, compared after every step. Durable backends
//! also close and reopen between steps.
//!
//! Cases per backend: `PROPTEST_CASES` if set, else 64 (each case is up to
//! 40 operations). `cargo xtask crash-test` does not change this; run with
//! `PROPTEST_CASES=10000` for the long soak.

use std::collections::BTreeMap;
use std::path::Path;

use atrepo_store::{Batch, BlockStore, Bytes};
use cid::Cid;
use proptest::prelude::*;

use crate::conformance::sized_block;

/// How many distinct blocks the operations draw from: few, so that
/// duplicates and hits are common.
const POOL: u8 = 24;

fn pool_block(i: u8) -> (Cid, Bytes) {
    static POOL_BLOCKS: std::sync::OnceLock<Vec<(Cid, Bytes)>> = std::sync::OnceLock::new();
    let pool = POOL_BLOCKS.get_or_init(|| {
        (0..POOL)
            .map(|i| {
                // Sizes from empty to a few KiB, and one of 1 MiB.
                let len = match i {
                    0 => 0,
                    23 => 1024 * 1024,
                    _ => usize::from(i) * 173 % 3000,
                };
                sized_block(10_000 + u32::from(i), len)
            })
            .collect()
    });
    pool[usize::from(i)].clone()
}

#[derive(Debug, Clone)]
enum Op {
    /// Put pool block `i`.
    Put(u8),
    /// Put pool block `i`'s CID with block `j`'s bytes (a caller's bug the
    /// contract still defines: the first bytes win).
    PutConflicting(u8, u8),
    /// Write these pool blocks as one batch.
    Batch(Vec<u8>),
    /// Flush.
    Flush,
    /// Close the store and open it again (durable backends only).
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..POOL).prop_map(Op::Put),
        1 => (0..POOL, 0..POOL).prop_map(|(i, j)| Op::PutConflicting(i, j)),
        4 => prop::collection::vec(0..POOL, 0..8).prop_map(Op::Batch),
        1 => Just(Op::Flush),
        2 => Just(Op::Reopen),
    ]
}

/// The reference: the contract, written the obvious way.
#[derive(Default)]
struct Model(BTreeMap<Cid, Bytes>);

impl Model {
    fn put(&mut self, cid: Cid, bytes: Bytes) {
        self.0.entry(cid).or_insert(bytes);
    }
}

/// Opens the backend under test inside `dir`.
type Open<'a> = &'a dyn Fn(&Path) -> Box<dyn BlockStore>;

fn compare(store: &dyn BlockStore, model: &Model, step: usize) -> Result<(), TestCaseError> {
    for i in 0..POOL {
        let (cid, _) = pool_block(i);
        let got = store.get(&cid).unwrap();
        prop_assert_eq!(got.as_ref(), model.0.get(&cid), "get block {} after step {}", i, step);
        prop_assert_eq!(store.has(&cid).unwrap(), model.0.contains_key(&cid));
    }
    let usage = store.usage().unwrap();
    prop_assert_eq!(usage.blocks, model.0.len() as u64, "blocks after step {}", step);
    let payload: u64 = model.0.values().map(|b| b.len() as u64).sum();
    prop_assert_eq!(usage.payload_bytes, payload, "payload after step {}", step);
    Ok(())
}

fn compare_scan(store: &dyn BlockStore, model: &Model) -> Result<(), TestCaseError> {
    let mut scanned = BTreeMap::new();
    store
        .scan(&mut |cid, bytes| {
            scanned.insert(*cid, Bytes::copy_from_slice(bytes));
            Ok(())
        })
        .unwrap();
    prop_assert_eq!(&scanned, &model.0);
    Ok(())
}

fn run(ops: &[Op], open: Open<'_>, durable: bool) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Put(i) => {
                let (cid, bytes) = pool_block(*i);
                store.put(cid, bytes.clone()).unwrap();
                model.put(cid, bytes);
            }
            Op::PutConflicting(i, j) => {
                let (cid, _) = pool_block(*i);
                let (_, bytes) = pool_block(*j);
                store.put(cid, bytes.clone()).unwrap();
                model.put(cid, bytes);
            }
            Op::Batch(items) => {
                let blocks: Vec<_> = items.iter().map(|i| pool_block(*i)).collect();
                store.write(blocks.iter().cloned().collect::<Batch>()).unwrap();
                for (cid, bytes) in blocks {
                    model.put(cid, bytes);
                }
            }
            Op::Flush => store.flush().unwrap(),
            Op::Reopen if durable => {
                drop(store);
                store = open(dir.path());
            }
            Op::Reopen => {}
        }
        compare(&*store, &model, step)?;
    }
    compare_scan(&*store, &model)
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    // Failures are reported with their minimal sequence; nothing is written
    // into the source tree.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

macro_rules! model_test {
    ($name:ident, durable = $durable:expr, $open:expr) => {
        proptest! {
            #![proptest_config(config())]
            #[test]
            fn $name(ops in prop::collection::vec(op(), 1..40)) {
                let open: Open<'_> = &$open;
                run(&ops, open, $durable)?;
            }
        }
    };
}

model_test!(memory, durable = false, |_: &Path| Box::new(atrepo_store::MemoryStore::new()));

model_test!(spill_in_memory, durable = false, |dir: &Path| {
    let options = atrepo_store::SpillOptions::default().parent(dir).memory_limit(u64::MAX);
    Box::new(atrepo_store::SpillStore::new(options).unwrap())
});

#[cfg(feature = "redb")]
model_test!(redb, durable = true, |dir: &Path| {
    Box::new(atrepo_store::RedbStore::open(dir.join("blocks.redb")).unwrap())
});

#[cfg(feature = "sqlite")]
model_test!(sqlite, durable = true, |dir: &Path| {
    Box::new(atrepo_store::SqliteStore::open(dir.join("blocks.sqlite")).unwrap())
});

#[cfg(feature = "sled")]
model_test!(sled, durable = true, |dir: &Path| {
    Box::new(atrepo_store::SledStore::open(dir.join("blocks.sled")).unwrap())
});

// A spill store with a budget small enough that most sequences hand off to
// disk part-way.
#[cfg(any(feature = "redb", feature = "sqlite", feature = "sled"))]
model_test!(spill_to_disk, durable = false, |dir: &Path| {
    let options = atrepo_store::SpillOptions::default().parent(dir).memory_limit(16 * 1024);
    Box::new(atrepo_store::SpillStore::new(options).unwrap())
});

/// The CAR-file backend is read-only: the model there is "a CAR of these
/// blocks, duplicates and all", compared on every pool block.
#[cfg(feature = "car")]
mod car {
    use super::*;
    use atrepo_store::{CarFileOptions, CarFileStore, IndexMode};

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn car_file(items in prop::collection::vec(0..POOL, 1..30), persist in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let blocks: Vec<_> = items.iter().map(|i| pool_block(*i)).collect();
            let path = crate::car::write_car(dir.path(), &blocks);
            let mut model = Model::default();
            for (cid, bytes) in blocks {
                model.put(cid, bytes);
            }
            let index = if persist { IndexMode::Beside } else { IndexMode::InMemory };
            let options = CarFileOptions::default().index(index);
            let store = CarFileStore::open_with(&path, &options).unwrap();
            compare(&store, &model, 0)?;
            compare_scan(&store, &model)?;
            drop(store);
            let store = CarFileStore::open_with(&path, &options).unwrap();
            compare(&store, &model, 1)?;
        }
    }
}
