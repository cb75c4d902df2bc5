//! Opening stores from spec strings, as the command line and config files
//! do.

use atrepo_store::{Backend, BlockStore, Error, ErrorKind, StoreSpec, open};

use crate::conformance::blocks;

#[test]
fn memory_opens() {
    let store = open("memory").unwrap();
    store.write(blocks("m", 3).into_iter().collect()).unwrap();
    assert_eq!(store.usage().unwrap().blocks, 3);
}

#[test]
fn unknown_scheme_is_a_usage_error_naming_the_choices() {
    let err = open("tape:/dev/st0").map(drop).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert_eq!(
        err.to_string(),
        "invalid store spec \"tape:/dev/st0\": expected memory, redb:PATH, sqlite:PATH, \
         sled:PATH, car:PATH or spill:BACKEND"
    );
}

#[test]
fn backends_not_compiled_in_say_which_feature() {
    for backend in Backend::ALL.into_iter().filter(|b| !b.is_compiled()) {
        let spec = format!("{backend}:/nonexistent/store");
        match open(&spec) {
            Err(e @ Error::NotCompiled { .. }) => {
                assert_eq!(e.kind(), ErrorKind::Usage);
                assert_eq!(
                    e.to_string(),
                    format!(
                        "store backend \"{backend}\" is not compiled in: rebuild with the \
                         \"{backend}\" feature"
                    )
                );
            }
            Err(e) => panic!("{spec}: {e:?}"),
            Ok(_) => panic!("{spec}: opened"),
        }
    }
}

#[test]
fn every_compiled_disk_backend_opens_writes_and_reopens() {
    for backend in [Backend::Redb, Backend::Sqlite, Backend::Sled] {
        if !backend.is_compiled() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let spec = StoreSpec::at(backend, dir.path().join("store")).to_string();
        let blocks = blocks(&spec, 20);
        open(&spec).unwrap().write(blocks.iter().cloned().collect()).unwrap();
        let store = open(&spec).unwrap();
        for (cid, bytes) in &blocks {
            assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes), "{spec}");
        }
    }
}

#[test]
fn spill_spec_opens_a_spill_store() {
    for backend in [Backend::Redb, Backend::Sqlite, Backend::Sled] {
        let spec = format!("spill:{backend}");
        match open(&spec) {
            Ok(store) => {
                assert!(backend.is_compiled());
                store.write(blocks("s", 2).into_iter().collect()).unwrap();
                assert_eq!(store.usage().unwrap().blocks, 2);
            }
            Err(Error::NotCompiled { backend: b }) => {
                assert!(!backend.is_compiled());
                assert_eq!(b, backend.name());
            }
            Err(e) => panic!("{spec}: {e:?}"),
        }
    }
}

#[cfg(feature = "car")]
#[test]
fn car_spec_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = blocks("car", 5);
    let path = crate::car::write_car(dir.path(), &blocks);
    let store = open(&format!("car:{}", path.display())).unwrap();
    assert_eq!(store.get(&blocks[2].0).unwrap().as_ref(), Some(&blocks[2].1));
    let err = store.write(blocks.iter().cloned().collect()).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { backend: "car" }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert_eq!(err.to_string(), "car store is read-only");
}
