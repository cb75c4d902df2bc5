//! [`KeyResolver`]: where a DID's current signing key comes from, and
//! [`StaticKeyResolver`], a fixed map for tests, fixtures and offline use.
//!
//! This crate does no I/O: network resolvers (PLC directory, `did:web`)
//! live elsewhere and implement the same trait. Its methods return futures
//! so that those resolvers can be asynchronous; synchronous ones return
//! ready futures.

use std::collections::BTreeMap;
use std::future::{Future, ready};

use crate::error::Error;
use crate::key::PublicKey;

/// Looks up the current atproto signing key of a DID.
///
/// Contract:
/// - [`resolve_key`](Self::resolve_key) may answer from a cache;
/// - [`refresh_key`](Self::refresh_key) is called after a signature fails,
///   once, to pick up a rotated key; implementations should bypass their
///   cache there and rate-limit it (the sync specification asks relays to
///   refresh at most once per failure and to throttle refreshes per host);
/// - neither may return a key for another DID.
pub trait KeyResolver {
    /// The error a lookup can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The signing key `did` currently declares.
    fn resolve_key(&self, did: &str)
    -> impl Future<Output = Result<PublicKey, Self::Error>> + Send;

    /// Like [`resolve_key`](Self::resolve_key), bypassing any cache. The
    /// default asks `resolve_key` again.
    fn refresh_key(
        &self,
        did: &str,
    ) -> impl Future<Output = Result<PublicKey, Self::Error>> + Send {
        self.resolve_key(did)
    }
}

/// A [`KeyResolver`] over a fixed map from DID to key.
#[derive(Debug, Clone, Default)]
pub struct StaticKeyResolver {
    keys: BTreeMap<String, PublicKey>,
}

impl StaticKeyResolver {
    /// An empty resolver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the key of `did`.
    pub fn insert(&mut self, did: impl Into<String>, key: PublicKey) -> &mut Self {
        self.keys.insert(did.into(), key);
        self
    }

    /// The key of `did`, synchronously.
    pub fn get(&self, did: &str) -> Result<PublicKey, Error> {
        self.keys.get(did).cloned().ok_or_else(|| Error::KeyNotFound { did: did.to_owned() })
    }
}

impl FromIterator<(String, PublicKey)> for StaticKeyResolver {
    fn from_iter<I: IntoIterator<Item = (String, PublicKey)>>(iter: I) -> Self {
        StaticKeyResolver { keys: iter.into_iter().collect() }
    }
}

impl KeyResolver for StaticKeyResolver {
    type Error = Error;

    fn resolve_key(&self, did: &str) -> impl Future<Output = Result<PublicKey, Error>> + Send {
        ready(self.get(did))
    }
}
