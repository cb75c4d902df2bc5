//! Integration tests of the `atrepo` facade and command line, one module
//! per area.

// The command line: output and exit codes (the binary needs the `cli`
// feature; without it there is no binary of this build to run).
#[cfg(feature = "cli")]
mod cli;
// Whole repositories: drivers, block orders, tampered variants, limits.
mod repo;
// Firehose events: fixtures as full events, tampered variants, state, the
// `atrepo event` command line.
mod event;
// Repositories and a firehose capture written by the reference TypeScript
// implementation.
mod typescript_reference;
// The malformed-input corpus (tests/data/malformed): one snapshot of every
// case's error.
mod malformed_corpus;
// Every crate's fuzz bodies as bounded property tests, and the committed
// seed corpora replayed.
mod fuzz_bodies;
// Crash safety of the ingest path: a child killed with SIGKILL while
// spilling or writing verified blocks to a durable store.
#[cfg(all(unix, any(feature = "redb", feature = "sqlite", feature = "sled")))]
mod crash;

/// Polls a future that never waits (the key resolvers of these tests are
/// ready at once); shared by `repo` and `event`.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
