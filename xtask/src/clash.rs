//! `cargo xtask clash-pair`: finds two small DAG-CBOR records whose CIDs
//! share a short fingerprint ([`CidKey::short`]), the 8-byte key under
//! which the facade notes blocks that wait outside memory. A repository
//! holding both must still verify; the pair the tests use was found with
//! this command, and it prints the Rust constants to paste.
//!
//! Finding one takes about 2^32 hashing work: parallel collision search
//! (van Oorschot and Wiener) on `x -> short(CID of record(x))` over 64-bit
//! nonces, with trails ending at distinguished points, so memory stays a
//! few MB. Release build, two cores with SHA extensions: about half an
//! hour (seed 1: 1961 s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use atrepo::car::{DAG_CBOR, blessed_cid};
use atrepo::store::CidKey;

/// The record's `$type`: 17 bytes, so its text head is one byte.
const TYPE: &str = "com.example.clash";
const _: () = assert!(TYPE.len() == 17);

/// A trail ends at a point whose low bits are this many zeros.
const DISTINGUISHED_BITS: u32 = 18;

/// A trail longer than this many times the expected length is abandoned
/// (it may have fallen into a cycle).
const TRAIL_CAP: u64 = 20 << DISTINGUISHED_BITS;

/// The record of nonce `x`: `{"$type": TYPE, "nonce": "<16 hex digits>"}`
/// in canonical DAG-CBOR (both keys are 5 bytes long; `$` sorts first),
/// 48 bytes, so hashing it is one SHA-256 block.
fn record(x: u64) -> Vec<u8> {
    let mut out = vec![0xa2, 0x65];
    out.extend_from_slice(b"$type");
    out.push(0x60 | 17);
    out.extend_from_slice(TYPE.as_bytes());
    out.push(0x65);
    out.extend_from_slice(b"nonce");
    out.push(0x70);
    out.extend_from_slice(format!("{x:016x}").as_bytes());
    out
}

/// One step: the short fingerprint of record `x`'s CID.
fn step(x: u64) -> u64 {
    CidKey::of(&blessed_cid(DAG_CBOR, &record(x))).short()
}

/// Where a trail started and how many steps it took.
type Trail = (u64, u64);

/// Runs `cargo xtask clash-pair [SEED]`.
pub(crate) fn run_clash_pair(args: &[String]) -> Result<()> {
    let seed = match args {
        [] => 1,
        [s] => s.parse()?,
        _ => bail!("clash-pair: expected at most one argument, a seed"),
    };
    let started = std::time::Instant::now();
    let (a, b) = search(seed)?;
    let (ca, cb) = (blessed_cid(DAG_CBOR, &record(a)), blessed_cid(DAG_CBOR, &record(b)));
    assert_eq!(CidKey::of(&ca).short(), CidKey::of(&cb).short());
    println!("// {ca}\n// {cb}\n// short fingerprint {:016x}", CidKey::of(&ca).short());
    println!("const CLASH_NONCES: [u64; 2] = [{a:#018x}, {b:#018x}];");
    eprintln!("found in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Two different nonces whose records' CIDs share a short fingerprint.
fn search(seed: u64) -> Result<(u64, u64)> {
    let points: Arc<Mutex<HashMap<u64, Trail>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let found: Arc<Mutex<Option<(u64, u64)>>> = Arc::default();
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (points, done, found) = (points.clone(), done.clone(), found.clone());
            std::thread::spawn(move || {
                // Starting points: a splitmix64 sequence per thread.
                let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t;
                while !done.load(Ordering::Relaxed) {
                    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let start = splitmix(state);
                    let Some((end, len)) = walk(start) else { continue };
                    let other = points.lock().unwrap().insert(end, (start, len));
                    if let Some(other) = other
                        && let Some(pair) = meet((start, len), other)
                    {
                        *found.lock().unwrap() = Some(pair);
                        done.store(true, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        if h.join().is_err() {
            bail!("clash-pair: a search thread panicked");
        }
    }
    let pair = *found.lock().unwrap();
    pair.ok_or_else(|| anyhow::anyhow!("clash-pair: no pair found"))
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Follows the trail from `start` to its distinguished point: the point
/// and the steps taken, or `None` past [`TRAIL_CAP`].
fn walk(start: u64) -> Option<(u64, u64)> {
    let mask = (1u64 << DISTINGUISHED_BITS) - 1;
    let mut x = start;
    for len in 1..=TRAIL_CAP {
        x = step(x);
        if x & mask == 0 {
            return Some((x, len));
        }
    }
    None
}

/// Two trails that end at one point: walks them in step from the same
/// distance to it until they meet, and returns the two different points
/// that step to the same one (`None` if one trail lies on the other).
fn meet((mut a, la): Trail, (mut b, lb): Trail) -> Option<(u64, u64)> {
    for _ in lb..la {
        a = step(a);
    }
    for _ in la..lb {
        b = step(b);
    }
    for _ in 0..la.min(lb) {
        if a == b {
            return None;
        }
        let (na, nb) = (step(a), step(b));
        if na == nb {
            return Some((a, b));
        }
        (a, b) = (na, nb);
    }
    None
}
