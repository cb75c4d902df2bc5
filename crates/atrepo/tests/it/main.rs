//! Integration tests of the `atrepo` facade and command line, one module
//! per area.

// Firehose events: fixtures as full events, tampered variants, state, the
// `atrepo event` command line.
mod event;
