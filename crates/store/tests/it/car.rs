//! The CAR-file backend: the read conformance cases, the persisted index
//! (reuse, staleness, corruption), hashing while indexing, and CIDs that
//! atproto does not bless.

use std::path::{Path, PathBuf};

use atrepo_car::{CidMode, Header, Limits, Options, encode};
use atrepo_store::{
    BlockRead, BlockStore, Bytes, CarFileOptions, CarFileStore, Error, ErrorKind, IndexMode,
    IndexStatus,
};
use cid::Cid;

use crate::conformance::{Scratch, blocks, cid_of, cid_sha512_of, cid_v0_of, sized_block};

/// Writes `blocks` as a CAR (root: the first block) into `dir`.
pub(crate) fn write_car(dir: &Path, blocks: &[(Cid, Bytes)]) -> PathBuf {
    let path = dir.join("repo.car");
    std::fs::write(&path, car_bytes(blocks)).unwrap();
    path
}

fn car_bytes(blocks: &[(Cid, Bytes)]) -> Vec<u8> {
    let root = blocks.first().map_or_else(|| cid_of(b"root"), |(c, _)| *c);
    encode(&Header::new(vec![root]).unwrap(), blocks.iter().map(|(c, b)| (c, &b[..])))
}

fn index_path(car: &Path) -> PathBuf {
    let mut p = car.as_os_str().to_owned();
    p.push(".idx");
    PathBuf::from(p)
}

mod in_memory_index {
    use super::*;
    fn open_with(blocks: &[(Cid, Bytes)]) -> Scratch<CarFileStore> {
        let dir = tempfile::tempdir().unwrap();
        let path = write_car(dir.path(), blocks);
        let options = CarFileOptions::default().index(IndexMode::InMemory);
        let store = CarFileStore::open_with(path, &options).unwrap();
        assert_eq!(store.index_status(), IndexStatus::InMemory);
        Scratch::in_dir(store, dir)
    }
    read_suite!(open_with);
}

mod loaded_index {
    use super::*;
    fn open_with(blocks: &[(Cid, Bytes)]) -> Scratch<CarFileStore> {
        let dir = tempfile::tempdir().unwrap();
        let path = write_car(dir.path(), blocks);
        let first = CarFileStore::open(&path).unwrap();
        assert_eq!(first.index_status(), IndexStatus::Saved { replaced: None });
        drop(first);
        let store = CarFileStore::open(&path).unwrap();
        assert_eq!(store.index_status(), IndexStatus::Loaded);
        Scratch::in_dir(store, dir)
    }
    read_suite!(open_with);
}

#[track_caller]
fn reopened_status(car: &Path) -> IndexStatus {
    CarFileStore::open(car).unwrap().index_status()
}

#[test]
fn second_open_reads_the_index_not_the_car() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = blocks("fast", 1000);
    let car = write_car(dir.path(), &blocks);
    assert_eq!(reopened_status(&car), IndexStatus::Saved { replaced: None });
    assert_eq!(std::fs::metadata(index_path(&car)).unwrap().len(), 128 + 48 * 1000);
    let store = CarFileStore::open(&car).unwrap();
    assert_eq!(store.index_status(), IndexStatus::Loaded);
    for (cid, bytes) in &blocks {
        assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes));
    }
}

#[test]
fn a_changed_car_is_reindexed() {
    let dir = tempfile::tempdir().unwrap();
    let car = write_car(dir.path(), &blocks("v1", 10));
    reopened_status(&car);
    let newer = blocks("v2", 12);
    write_car(dir.path(), &newer);
    assert_eq!(
        reopened_status(&car),
        IndexStatus::Saved { replaced: Some("car file length changed") }
    );
    let store = CarFileStore::open(&car).unwrap();
    assert_eq!(store.get(&newer[11].0).unwrap().as_ref(), Some(&newer[11].1));
}

#[test]
fn a_touched_car_is_reindexed() {
    let dir = tempfile::tempdir().unwrap();
    let car = write_car(dir.path(), &blocks("same", 10));
    reopened_status(&car);
    let file = std::fs::File::options().write(true).open(&car).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000)).unwrap();
    drop(file);
    assert_eq!(
        reopened_status(&car),
        IndexStatus::Saved { replaced: Some("car file modification time changed") }
    );
    assert_eq!(reopened_status(&car), IndexStatus::Loaded);
}

#[test]
fn a_car_with_another_header_of_the_same_size_is_reindexed() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = blocks("hdr", 4);
    let car = write_car(dir.path(), &blocks);
    reopened_status(&car);
    let modified = std::fs::metadata(&car).unwrap().modified().unwrap();
    // Same blocks, same length, same mtime, another root.
    let other =
        encode(&Header::new(vec![blocks[1].0]).unwrap(), blocks.iter().map(|(c, b)| (c, &b[..])));
    std::fs::write(&car, other).unwrap();
    std::fs::File::options().write(true).open(&car).unwrap().set_modified(modified).unwrap();
    assert_eq!(reopened_status(&car), IndexStatus::Saved { replaced: Some("car header changed") });
}

#[test]
fn a_corrupt_index_is_detected_and_rebuilt() {
    type Corruption = fn(&mut Vec<u8>);
    let cases: [(&str, Corruption); 6] = [
        ("entries checksum mismatch", |idx| idx[128 + 40] ^= 1),
        ("entry count does not fit the file", |idx| idx.truncate(idx.len() - 1)),
        ("index file shorter than its header", |idx| idx.truncate(100)),
        ("not an index file (bad magic)", |idx| idx[0] = b'X'),
        ("unsupported index version", |idx| idx[8] = 2),
        ("entry count does not fit the file", |idx| idx[64] ^= 0x80),
    ];
    for (reason, corrupt) in cases {
        let dir = tempfile::tempdir().unwrap();
        let blocks = blocks("corrupt", 50);
        let car = write_car(dir.path(), &blocks);
        reopened_status(&car);
        let mut idx = std::fs::read(index_path(&car)).unwrap();
        corrupt(&mut idx);
        std::fs::write(index_path(&car), idx).unwrap();
        let store = CarFileStore::open(&car).unwrap();
        assert_eq!(store.index_status(), IndexStatus::Saved { replaced: Some(reason) });
        for (cid, bytes) in &blocks {
            assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes), "{reason}");
        }
    }
}

#[test]
fn an_index_built_without_hashing_is_not_trusted_by_a_verifying_open() {
    let dir = tempfile::tempdir().unwrap();
    let car = write_car(dir.path(), &blocks("trust", 5));
    let unchecked = CarFileStore::open_with(&car, &CarFileOptions::default().unchecked()).unwrap();
    assert_eq!(unchecked.index_status(), IndexStatus::Saved { replaced: None });
    drop(unchecked);
    assert_eq!(
        reopened_status(&car),
        IndexStatus::Saved { replaced: Some("index built without hashing blocks") }
    );
    // A verified index is good enough for an unchecked open.
    let again = CarFileStore::open_with(&car, &CarFileOptions::default().unchecked()).unwrap();
    assert_eq!(again.index_status(), IndexStatus::Loaded);
}

#[test]
fn a_block_that_does_not_hash_to_its_cid_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = blocks("tampered", 3);
    let mut bytes = car_bytes(&blocks);
    *bytes.last_mut().unwrap() ^= 1;
    let car = dir.path().join("bad.car");
    std::fs::write(&car, &bytes).unwrap();
    match CarFileStore::open(&car) {
        Err(e @ Error::Car(_)) => {
            assert_eq!(e.kind(), ErrorKind::Input);
            let source = std::error::Error::source(&e).unwrap().to_string();
            assert!(source.starts_with("block hash mismatch at offset"), "{source}");
            assert!(source.contains("in section 2"), "{source}");
        }
        other => panic!("expected a hash mismatch, found {other:?}"),
    }
    assert!(!index_path(&car).exists(), "an index was saved for a CAR that failed");
    // Opting out of hashing, explicitly, indexes it anyway.
    let store = CarFileStore::open_with(&car, &CarFileOptions::default().unchecked()).unwrap();
    assert_eq!(store.get(&blocks[2].0).unwrap().unwrap().len(), blocks[2].1.len());
}

#[test]
fn malformed_and_truncated_cars_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let whole = car_bytes(&blocks("cut", 3));
    for len in [0, 1, 10, whole.len() - 1] {
        let car = dir.path().join(format!("cut{len}.car"));
        std::fs::write(&car, &whole[..len]).unwrap();
        match CarFileStore::open(&car) {
            Err(e @ Error::Car(_)) => assert_eq!(e.kind(), ErrorKind::Input, "{len}: {e:?}"),
            other => panic!("{len}: expected a CAR error, found {other:?}"),
        }
    }
}

#[test]
fn limits_apply_while_indexing() {
    let dir = tempfile::tempdir().unwrap();
    let car = write_car(dir.path(), &blocks("many", 20));
    let options = CarFileOptions::default()
        .index(IndexMode::InMemory)
        .car(Options::default().limits(Limits::default().max_blocks(10)));
    let err = CarFileStore::open_with(&car, &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit, "{err:?}");
}

#[test]
fn non_blessed_cids_need_permissive_mode_and_then_work() {
    let dir = tempfile::tempdir().unwrap();
    let v0 = (cid_v0_of(b"old style"), Bytes::from_static(b"old style"));
    let long = (cid_sha512_of(b"long hash"), Bytes::from_static(b"long hash"));
    let blessed = sized_block(1, 300);
    let all = vec![blessed.clone(), v0.clone(), long.clone()];
    let car = write_car(dir.path(), &all);
    let err = CarFileStore::open(&car).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{err:?}");

    let permissive = Options::default().cid_mode(CidMode::Permissive);
    let store = CarFileStore::open_with(&car, &CarFileOptions::default().car(permissive)).unwrap();
    for (cid, bytes) in &all {
        assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes), "{cid}");
    }
    // The CIDv1 with the CIDv0's digest is another block.
    assert!(!store.has(&cid_of(b"old style")).unwrap());
    assert_eq!(store.usage().unwrap().blocks, 3);
    drop(store);
    // An index that admits non-blessed CIDs is not reused by a strict open.
    match CarFileStore::open(&car) {
        Err(e @ Error::Car(_)) => assert_eq!(e.kind(), ErrorKind::Input),
        other => panic!("expected a strict refusal, found {other:?}"),
    }
}

#[test]
fn reads_are_views_into_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = blocks("view", 3);
    let store = CarFileStore::open(write_car(dir.path(), &blocks)).unwrap();
    let a = store.get(&blocks[1].0).unwrap().unwrap();
    let b = store.get(&blocks[1].0).unwrap().unwrap();
    assert_eq!(a.as_ptr(), b.as_ptr(), "the block was copied");
}

#[test]
fn header_and_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = blocks("acct", 100);
    let car = write_car(dir.path(), &blocks);
    let store = CarFileStore::open(&car).unwrap();
    assert_eq!(store.header().root(), blocks[0].0);
    assert_eq!(store.len(), 100);
    let usage = store.usage().unwrap();
    let payload: u64 = blocks.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!((usage.blocks, usage.payload_bytes), (100, payload));
    let file = std::fs::metadata(&car).unwrap().len();
    assert_eq!(usage.overhead_bytes, file - payload + 48 * 100);
}

#[test]
fn a_car_with_no_blocks_is_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let car = write_car(dir.path(), &[]);
    let store = CarFileStore::open(&car).unwrap();
    assert!(store.is_empty());
    assert!(!store.has(&cid_of(b"root")).unwrap());
    assert_eq!(reopened_status(&car), IndexStatus::Loaded);
}

#[test]
fn an_index_that_cannot_be_saved_beside_the_car_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = blocks("nosave", 3);
    let car = write_car(dir.path(), &blocks);
    std::fs::create_dir(index_path(&car)).unwrap();
    let store = CarFileStore::open(&car).unwrap();
    match store.index_status() {
        IndexStatus::NotSaved { replaced: Some("index file unreadable"), .. } => {}
        other => panic!("expected NotSaved, found {other:?}"),
    }
    assert_eq!(store.get(&blocks[0].0).unwrap().as_ref(), Some(&blocks[0].1));
}

#[test]
fn an_explicit_index_path_that_cannot_be_written_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let car = write_car(dir.path(), &blocks("explicit", 3));
    let at = IndexMode::At(dir.path().join("missing").join("repo.idx"));
    let err = CarFileStore::open_with(&car, &CarFileOptions::default().index(at)).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound), "{err:?}");
    let good = IndexMode::At(dir.path().join("elsewhere.idx"));
    let store = CarFileStore::open_with(&car, &CarFileOptions::default().index(good)).unwrap();
    assert_eq!(store.index_status(), IndexStatus::Saved { replaced: None });
}

#[test]
fn binary_search_finds_every_one_of_many_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<_> = (0..20_000).map(|i| sized_block(i, 40)).collect();
    let car = write_car(dir.path(), &blocks);
    reopened_status(&car);
    let store = CarFileStore::open(&car).unwrap();
    assert_eq!(store.index_status(), IndexStatus::Loaded);
    for (cid, bytes) in &blocks {
        assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes));
    }
    for (cid, _) in (20_000..20_100).map(|i| sized_block(i, 40)) {
        assert!(!store.has(&cid).unwrap());
    }
}
