//! Fuzz target `syntax_parse`: identifier syntax (DID, handle, NSID, record key, TID, AT URI, datetime, CID string).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::verify::internal::fuzzing::syntax(data));
