//! Entry points for fuzzing and out-of-crate tests.
//!
//! Not part of the public API: anything here may change in any release.

/// Fuzz bodies: each takes arbitrary bytes, must never panic, and asserts
/// what must hold for accepted input.
pub mod fuzzing {
    use std::time::{Duration, SystemTime};

    use crate::event::{CommitEvent, Event, Limits, SyncEvent, Verifier};
    use crate::verify::{Curve, FixedClock, SigningKey};
    use crate::{Error, RepoReader, SignatureCheck, VerifyOptions};

    /// The clock the bodies check revs against: 2024-01-01.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
    }

    /// Small limits, so that hostile inputs hit them quickly.
    fn small_options() -> VerifyOptions {
        let car = crate::car::Options::default().limits(
            crate::car::Limits::default().max_section_len(64 * 1024).max_total_bytes(4 << 20),
        );
        VerifyOptions::default()
            .signature(SignatureCheck::Skip)
            .car(car)
            .memory_limit(1 << 20)
            .spill(None)
            .now(now())
    }

    /// Verifies `data` as a whole repository CAR (signature skipped, so the
    /// tree and records are reached; small limits, spilling off) through
    /// the slice and the stream drivers, which must agree: the same report
    /// (but for memory use: a slice's waiting blocks cost their positions
    /// only), or errors of the same class. Only the stream may stop at the
    /// memory limit where the slice completes.
    pub fn repo_full(data: &[u8]) {
        let from_slice =
            RepoReader::from_bytes(data.to_vec(), small_options()).and_then(RepoReader::finish);
        let from_stream =
            RepoReader::from_reader(data, small_options()).and_then(RepoReader::finish);
        if let Ok(a) = &from_slice {
            assert!(!a.signature.checked, "signature reported checked while skipped");
            assert_eq!(a.car.bytes, data.len() as u64, "report does not count every byte");
        }
        match (&from_slice, &from_stream) {
            (Ok(a), Ok(b)) => {
                let mut a = a.clone();
                a.memory = b.memory.clone();
                assert_eq!(&a, b, "slice and stream reports differ");
            }
            (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "slice: {a:?}, stream: {b:?}"),
            (Ok(_), Err(b)) => {
                assert_eq!(b.kind(), crate::ErrorKind::Limit, "slice passed, stream: {b:?}");
            }
            (Err(a), Ok(_)) => panic!("stream passed, slice: {a:?}"),
        }
        if let Err(e) = &from_slice {
            assert_ne!(e.kind(), crate::ErrorKind::Usage, "a usage error from input: {e:?}");
        }
    }

    fn key() -> &'static crate::verify::PublicKey {
        static KEY: std::sync::OnceLock<crate::verify::PublicKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            SigningKey::from_seed(Curve::K256, b"fuzz event")
                .expect("a fixed seed makes a key")
                .public_key()
        })
    }

    /// Decodes `data` as a firehose frame or bare body. An accepted
    /// `#commit` or `#sync` body encodes to bytes that decode to the same
    /// event (decoding drops only skipped fields), and goes through the
    /// verifier (fixed key and clock) without a panic.
    pub fn event_decode(data: &[u8]) {
        let limits = Limits::default();
        let verifier = Verifier::new().with_clock(FixedClock(now()));
        match Event::decode(data, &limits) {
            Ok(Event::Commit(event)) => {
                let again = event.to_cbor();
                assert_eq!(CommitEvent::decode(&again, &limits).ok().as_ref(), Some(&event));
                let _ = verifier.verify_commit(&event, key(), None);
            }
            Ok(Event::Sync(event)) => {
                let again = event.to_cbor();
                assert_eq!(SyncEvent::decode(&again, &limits).ok().as_ref(), Some(&event));
                let _ = verifier.verify_sync(&event, key(), None);
            }
            Ok(_) | Err(_) => {}
        }
        // The bare-body decoders on their own.
        let _ = CommitEvent::decode(data, &limits);
        let _ = SyncEvent::decode(data, &limits);
    }

    /// The error a [`repo_full`] run ends with, for regression tests.
    pub fn repo_full_error(data: &[u8]) -> Option<Error> {
        RepoReader::from_bytes(data.to_vec(), small_options()).and_then(RepoReader::finish).err()
    }
}
