//! Robustness: mutated CARs and arbitrary bytes never panic any reader,
//! every reader gives the same blocks and the same error, and every block
//! any reader yields hashes to its CID.

use atrepo_car::{CidMode, Options, blessed_cid};
use proptest::prelude::*;
use proptest::sample::Index;

use crate::common::*;
use crate::roundtrip::{input, write};

/// One edit: overwrite, insert or delete a byte.
#[derive(Debug, Clone)]
enum Edit {
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<Index>().prop_map(Edit::Delete),
    ]
}

fn apply(car: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        match e {
            Edit::Set(i, b) if !car.is_empty() => {
                let at = i.index(car.len());
                car[at] = *b;
            }
            Edit::Insert(i, b) => {
                let at = i.index(car.len() + 1);
                car.insert(at, *b);
            }
            Edit::Delete(i) if !car.is_empty() => {
                let at = i.index(car.len());
                car.remove(at);
            }
            _ => {}
        }
    }
}

/// Checks what every reader yields: blessed CIDs that verify.
fn all_blocks_verify(got: &Outcome) -> Result<(), TestCaseError> {
    for (cid, data, _, _) in &got.blocks {
        prop_assert_eq!(blessed_cid(cid.codec(), data), *cid);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A few byte edits anywhere in a valid CAR.
    #[test]
    fn mutated_cars_read_the_same_through_every_reader(
        input in input(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let mut car = write(&input).car;
        apply(&mut car, &edits);
        // `read_all` asserts that every reader agrees.
        let got = read_all(&car, Options::default());
        all_blocks_verify(&got)?;
        // Permissive mode may accept more CIDs, but never an unverified block.
        let loose = read_all(&car, Options::default().cid_mode(CidMode::Permissive));
        prop_assert!(loose.blocks.len() >= got.blocks.len());
        prop_assert_eq!(&loose.blocks[..got.blocks.len()], &got.blocks[..]);
    }

    /// Arbitrary bytes, also through the fuzz entry points.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let got = read_all(&bytes, Options::default());
        all_blocks_verify(&got)?;
        atrepo_car::internal::fuzzing::car_stream(&bytes);
        atrepo_car::internal::fuzzing::car_header(&bytes);
    }

    /// Arbitrary bytes after a valid header: the sections are where most of
    /// the parsing is.
    #[test]
    fn arbitrary_sections_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
        let car = cat(&[&framed(&header()), &tail]);
        let got = read_all(&car, Options::default());
        all_blocks_verify(&got)?;
        read_all(&car, Options::default().cid_mode(CidMode::Permissive).unchecked());
    }
}
