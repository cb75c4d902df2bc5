//! The same full-repository workload through atrepo and its peers: "walk
//! all records in key order and sum their sizes", on signed repositories
//! from atrepo's generator held in memory (3 KiB: 8 records; 5 MB: 15,000
//! records), single-threaded (a current-thread tokio runtime for the async
//! peers).
//!
//! What each checks on the way (see `docs/performance.md`, "Peers"; the
//! peers' file and function names are those of their crates.io sources):
//!
//! - atrepo (`verify_repo`): every block's SHA-256, the commit (strict
//!   DRISL, DID, rev) and its signature, every MST rule (key order, key
//!   layers, node shape, canonical encoding), every record's DRISL,
//!   completeness, unreferenced and duplicate blocks. Timed twice: as
//!   such, and without the signature check (`SignatureCheck::Skip`), so
//!   the small repository compares like with like against the peers that
//!   skip it.
//! - repo-stream (0.5.0-alpha.10): every block's SHA-256, MST key order
//!   and key layers; no signature, records not decoded.
//! - atrium-repo (0.2.0): every block's SHA-256 when its CID says
//!   sha2-256 (`CarStore::open`, `src/blockstore/car.rs`; other hash codes
//!   are let through unchecked). MST (`Tree::entries`, `Node::parse`,
//!   `TreeEntry::parse` in `src/mst.rs`): node shape as decoded by
//!   `serde_ipld_dagcbor`, prefix lengths within the previous key, UTF-8
//!   keys; no key order, no key layers, no canonical encoding. No
//!   signature: `Repository::open` (`src/repo.rs`) reads the commit
//!   "without verifying its signature" and leaves checking `Commit::bytes`
//!   against `Commit::sig` to the caller. Records not decoded.
//! - rsky-repo (0.1.4): no block hash: `read_car_with_root` and
//!   `car_to_blocks` (`src/car.rs`) keep iroh-car's CIDs as given (and stop
//!   silently at the first unreadable block). MST (`MST::get_entries` in
//!   `src/mst/mod.rs`, `deserialize_node_data` in `src/mst/util.rs`): node
//!   shape, key syntax (`ensure_valid_mst_key`); no key order, no key
//!   layers (the first key's layer is only a hint), no canonical encoding;
//!   the `leaves()` walk (`NodeIter::next`) reads a missing or undecodable
//!   subtree as empty; a prefix length past the previous key panics
//!   (string slice) instead of failing. Signature checked: `verify_repo_root`
//!   (`src/sync/consumer.rs`) with the `did:key` calls `verify_commit_sig`
//!   (`src/util.rs`). Records not decoded.
//! - jacquard-repo (0.12.2): no block hash: `parse_car_bytes`
//!   (`src/car/reader.rs`) and `MemoryBlockStore::new_from_blocks`
//!   (`src/storage/memory.rs`) keep iroh-car's CIDs as given. MST
//!   (`Mst::get_entries` in `src/mst/tree.rs`, `deserialize_node_data` in
//!   `src/mst/util.rs`): node shape only; no key order, no key layers, no
//!   key syntax (`validate_key` runs on lookups and edits, not loads), no
//!   canonical encoding; a prefix length past the previous key panics
//!   (string slice) instead of failing; a missing node is an error.
//!   Signature checked: `Commit::verify` (`src/commit/mod.rs`). Records not
//!   decoded. Walked with `leaves_sequential` (`leaves` spawns a task per
//!   subtree).
//!
//! After the criterion runs, `cargo bench` also prints each one's time and
//! atrepo's time over each peer's per input, from alternating runs timed in
//! thread CPU time (`benches::cpu::fastest_each`), which holds up on a busy
//! machine. Target for the 3 KiB repository (backfills verify millions of
//! them): at most 1.2x repo-stream's.
//!
//! Only with the `peers` feature (off in `cargo xtask ci`):
//! `cargo bench -p benches --features peers --bench peers --
//! --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use atrepo::store::Bytes;
use atrepo::verify::PublicKey;
use atrepo::{RepoReader, SignatureCheck, VerifyOptions};
use benches::cpu::fastest_each;
use benches::generated::{Order, generated_car, key};
use criterion::{Criterion, Throughput};

const SEED: u64 = 1;

/// atrepo: verify everything, sum the record sizes. With `key` `None`,
/// everything but the commit's signature (`SignatureCheck::Skip`), the
/// checks repo-stream and atrium-repo make and more: what atrepo costs
/// beside them on small repositories, where the signature dominates.
fn atrepo(car: &Bytes, key: Option<&PublicKey>) -> (u64, u64) {
    let options = match key {
        Some(key) => VerifyOptions::default().key(key.clone()),
        None => VerifyOptions::default().signature(SignatureCheck::Skip),
    };
    let mut reader = RepoReader::from_bytes(car.clone(), options).unwrap();
    let (mut n, mut bytes) = (0, 0);
    while let Some(record) = reader.next_record().unwrap() {
        n += 1;
        bytes += record.data().map_or(0, |d| d.len() as u64);
    }
    reader.finish().unwrap();
    (n, bytes)
}

/// repo-stream: the README's workload, records reduced to their length at
/// load time, everything in memory.
fn repo_stream(car: &[u8], rt: &tokio::runtime::Runtime) -> (u64, u64) {
    rt.block_on(async {
        let mut mem = repo_stream::DriverBuilder::new()
            .with_mem_limit_mb(1024)
            .with_block_processor(|b| (b.len() as u64).to_le_bytes().to_vec())
            .load_car(car)
            .await
            .unwrap();
        let (mut n, mut bytes) = (0, 0);
        while let Some(chunk) = mem.next_chunk_strict(256).unwrap() {
            for out in chunk {
                n += 1;
                bytes += u64::from_le_bytes(out.data.as_slice().try_into().unwrap());
            }
        }
        (n, bytes)
    })
}

/// atrium-repo: `CarStore::open` indexes the CAR (re-hashing every
/// block), `Repository::open` reads the commit, the MST's `entries()`
/// stream walks the keys; then each record is read back from the store.
fn atrium(car: &[u8], rt: &tokio::runtime::Runtime) -> (u64, u64) {
    use atrium_repo::blockstore::{AsyncBlockStoreRead, CarStore};
    use futures::TryStreamExt;
    rt.block_on(async {
        let mut store = CarStore::open(std::io::Cursor::new(car)).await.unwrap();
        let root = store.roots().next().unwrap();
        let mut repo = atrium_repo::Repository::open(&mut store, root).await.unwrap();
        let entries: Vec<(String, atrium_repo::Cid)> =
            repo.tree().entries().try_collect().await.unwrap();
        drop(repo);
        let (mut n, mut bytes) = (0, 0);
        let mut block = Vec::new();
        for (_, cid) in entries {
            store.read_block_into(cid, &mut block).await.unwrap();
            n += 1;
            bytes += block.len() as u64;
        }
        (n, bytes)
    })
}

/// rsky-repo: `read_car_with_root` into a `MemoryBlockstore`,
/// `verify_repo_root` with the signing key as a `did:key` (commit
/// signature), the MST's `leaves()` walk, each record's bytes from the
/// store.
fn rsky(car: &[u8], did_key: &String, rt: &tokio::runtime::Runtime) -> (u64, u64) {
    use rsky_repo::storage::memory_blockstore::MemoryBlockstore;
    use rsky_repo::storage::types::RepoStorage;
    use std::sync::Arc;
    use tokio::sync::RwLock;
    rt.block_on(async {
        let car = rsky_repo::car::read_car_with_root(car.to_vec()).await.unwrap();
        let store = MemoryBlockstore::new(Some(car.blocks)).await.unwrap();
        let store: Arc<RwLock<dyn RepoStorage>> = Arc::new(RwLock::new(store));
        let repo = rsky_repo::sync::consumer::verify_repo_root(
            store.clone(),
            car.root,
            None,
            Some(did_key),
        )
        .await
        .unwrap();
        let leaves = repo.data.leaves().await.unwrap();
        let store = store.read().await;
        let (mut n, mut bytes) = (0, 0);
        for leaf in leaves {
            let block = store.get_bytes(&leaf.value).await.unwrap().unwrap();
            n += 1;
            bytes += block.len() as u64;
        }
        (n, bytes)
    })
}

/// jacquard-repo: `parse_car_bytes` into a `MemoryBlockStore`, the commit
/// decoded and `Commit::verify`'d against the key, the MST's
/// `leaves_sequential()` walk (`leaves()` spawns a task per subtree), each
/// record's bytes from the store.
fn jacquard(
    car: &[u8],
    key: &jacquard_common::types::crypto::PublicKey<'static>,
    rt: &tokio::runtime::Runtime,
) -> (u64, u64) {
    use jacquard_repo::{BlockStore, MemoryBlockStore, Mst};
    use std::sync::Arc;
    rt.block_on(async {
        let car = jacquard_repo::car::parse_car_bytes(car).await.unwrap();
        let store = Arc::new(MemoryBlockStore::new_from_blocks(car.blocks));
        let commit = store.get(&car.root).await.unwrap().unwrap();
        let commit = jacquard_repo::commit::Commit::<String>::from_cbor(&commit).unwrap();
        commit.verify(key).unwrap();
        let mst = Mst::load(store.clone(), *commit.data(), None);
        let (mut n, mut bytes) = (0, 0);
        for (_, cid) in mst.leaves_sequential().await.unwrap() {
            let block = store.get(&cid).await.unwrap().unwrap();
            n += 1;
            bytes += block.len() as u64;
        }
        (n, bytes)
    })
}

/// The peers timed after atrepo, by name.
const PEERS: [&str; 4] = ["repo-stream", "atrium-repo", "rsky-repo", "jacquard-repo"];

fn main() {
    let key = key(SEED);
    let did_key = key.to_did_key();
    let multikey = key.to_multikey();
    let jacquard_key = jacquard_common::types::crypto::PublicKey::decode(&multikey).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    // Each peer's workload on one input, in the order of `PEERS`.
    let peer = |i: usize, car: &Bytes| match i {
        0 => repo_stream(car, &rt),
        1 => atrium(car, &rt),
        2 => rsky(car, &did_key, &rt),
        _ => jacquard(car, &jacquard_key, &rt),
    };
    let inputs: Vec<(&str, u64, Bytes)> = [("3KiB", 8), ("5MB", 15_000)]
        .into_iter()
        .map(|(name, records)| {
            (name, records, Bytes::from(generated_car(records, SEED, Order::Streaming)))
        })
        .collect();
    // Every peer walks every record of every input, and they agree on the
    // count and the sizes, before anything is timed.
    for (name, records, car) in &inputs {
        let ours = atrepo(car, Some(&key));
        assert_eq!(ours.0, *records, "{name}");
        assert_eq!(atrepo(car, None), ours, "{name}: atrepo without the signature");
        for (i, peer_name) in PEERS.iter().enumerate() {
            assert_eq!(peer(i, car), ours, "{name}: {peer_name}");
        }
    }

    let mut c = Criterion::default().configure_from_args();
    for (name, _, car) in &inputs {
        let mut g = c.benchmark_group(format!("peers/{name}"));
        g.throughput(Throughput::Bytes(car.len() as u64));
        g.bench_function("atrepo", |b| b.iter(|| atrepo(black_box(car), Some(&key))));
        g.bench_function("atrepo-no-signature", |b| b.iter(|| atrepo(black_box(car), None)));
        for (i, peer_name) in PEERS.iter().enumerate() {
            g.bench_function(*peer_name, |b| b.iter(|| peer(i, black_box(car))));
        }
        g.finish();
    }
    c.final_summary();

    if std::env::args().any(|a| a == "--bench") {
        for (name, _, car) in &inputs {
            let runs = if car.len() < 100_000 { 10_000 } else { 20 };
            let mut runners: Vec<Box<dyn FnMut() + '_>> = vec![
                Box::new(|| {
                    black_box(atrepo(black_box(car), Some(&key)));
                }),
                Box::new(|| {
                    black_box(atrepo(black_box(car), None));
                }),
            ];
            for i in 0..PEERS.len() {
                let peer = &peer;
                runners.push(Box::new(move || {
                    black_box(peer(i, black_box(car)));
                }));
            }
            let times = fastest_each(runs, &mut runners);
            let (ours, unsigned) = (times[0].as_secs_f64(), times[1].as_secs_f64());
            let mut line = format!(
                "peers/{name}: fastest of {runs} alternating runs in thread CPU time: atrepo {:.1} µs, \
                 atrepo without the signature check {:.1} µs",
                ours * 1e6,
                unsigned * 1e6,
            );
            for (peer_name, t) in PEERS.iter().zip(&times[2..]) {
                let t = t.as_secs_f64();
                line += &format!(
                    ", {peer_name} {:.1} µs (atrepo / {peer_name} = {:.3}x, without the signature \
                     check {:.3}x)",
                    t * 1e6,
                    ours / t,
                    unsigned / t,
                );
            }
            println!("{line}");
        }
    }
}
