//! Signed, valid repositories from atrepo's own generator
//! ([`atrepo::generate`]), for benches that verify whole repositories: the
//! same bytes `atrepo gen --records N --seed S [--order shuffled]` writes.
//!
//! Big ones are cached as files under `target/bench-data/` (never
//! committed): generating 100 MB takes seconds and a few hundred MB of
//! memory.

use std::path::PathBuf;

use atrepo::generate::{GenOptions, generate, shuffle_blocks};
use atrepo::verify::{Curve, PublicKey, SigningKey};
use atrepo::writer::write_blocks;

/// The order of a generated repository's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The streamable order: the commit, then nodes in pre-order with each
    /// record after its entry's left subtree (what a PDS exports).
    Streaming,
    /// A seeded shuffle, as `atrepo gen --order shuffled` makes it.
    Shuffled,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Streaming => "streaming",
            Order::Shuffled => "shuffled",
        }
    }
}

/// The public key that signs the repository generated from `seed` (k256).
pub fn key(seed: u64) -> PublicKey {
    SigningKey::from_seed(Curve::K256, &seed.to_le_bytes())
        .unwrap_or_else(|e| panic!("signing key from seed {seed}: {e}"))
        .public_key()
}

/// A repository of `records` records, its blocks in `order`, as CAR bytes.
pub fn generated_car(records: u64, seed: u64, order: Order) -> Vec<u8> {
    let options = GenOptions::default().records(records).seed(seed);
    let generated = generate(&options).unwrap_or_else(|e| panic!("generate: {e}"));
    let mut built = generated
        .writer
        .build(&generated.key, generated.rev)
        .unwrap_or_else(|e| panic!("build: {e}"));
    if order == Order::Shuffled {
        // The same shuffle as `atrepo gen --order shuffled`.
        shuffle_blocks(&mut built.blocks, seed);
    }
    let mut car = Vec::new();
    write_blocks(&mut car, built.commit_cid, &built.blocks)
        .unwrap_or_else(|e| panic!("write_blocks: {e}"));
    car
}

/// Where generated inputs are cached: `$CARGO_TARGET_DIR/bench-data`, or
/// `target/bench-data` in the workspace.
pub fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    target.join("bench-data")
}

/// The file holding the repository of [`generated_car`], generated on
/// first use and reused afterwards.
pub fn cached_car(records: u64, seed: u64, order: Order) -> PathBuf {
    let dir = data_dir();
    let path = dir.join(format!("repo-{records}-seed{seed}-{}.car", order.name()));
    if !path.exists() {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let car = generated_car(records, seed, order);
        // Written under another name first, so an interrupted run leaves no
        // half file under the final one.
        let part = path.with_extension("car.part");
        std::fs::write(&part, &car).unwrap_or_else(|e| panic!("{}: {e}", part.display()));
        std::fs::rename(&part, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    path
}

/// The bytes of [`cached_car`].
pub fn cached_car_bytes(records: u64, seed: u64, order: Order) -> Vec<u8> {
    let path = cached_car(records, seed, order);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
