//! The static key resolver, polled without an async runtime (its futures
//! are always ready).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use atrepo_verify::{Curve, Error, ErrorKind, KeyResolver, SigningKey, StaticKeyResolver};

/// Polls a future that must be ready at once.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a static resolver future was pending"),
    }
}

#[test]
fn static_resolver() {
    let alice = SigningKey::from_seed(Curve::K256, b"alice").unwrap().public_key();
    let bob = SigningKey::from_seed(Curve::P256, b"bob").unwrap().public_key();
    let mut resolver = StaticKeyResolver::new();
    resolver.insert("did:plc:alice", alice.clone()).insert("did:plc:bob", bob.clone());
    assert_eq!(now(resolver.resolve_key("did:plc:alice")), Ok(alice.clone()));
    assert_eq!(now(resolver.refresh_key("did:plc:bob")), Ok(bob));
    let missing = now(resolver.resolve_key("did:plc:carol")).unwrap_err();
    assert_eq!(missing, Error::KeyNotFound { did: "did:plc:carol".to_owned() });
    assert_eq!(missing.kind(), ErrorKind::Environment);

    let collected: StaticKeyResolver =
        [("did:plc:alice".to_owned(), alice.clone())].into_iter().collect();
    assert_eq!(collected.get("did:plc:alice"), Ok(alice));
}
