//! Integration tests for `atrepo-store`: one binary, one module per area.

// The conformance suite, written once and instantiated for every backend.
#[macro_use]
mod conformance;

// The memory backend.
mod memory {
    fn open() -> atrepo_store::MemoryStore {
        atrepo_store::MemoryStore::new()
    }
    conformance_suite!(open);
}
