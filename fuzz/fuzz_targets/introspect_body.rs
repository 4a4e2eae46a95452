//! The introspection body parser sees network input: throw anything at it.
//!
//! Run with `cargo +nightly fuzz run introspect_body`; seed the corpus with
//! `introspect/tests/fixtures/*.json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhcos_introspect::{DiskHints, choose_disk, identify, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse(data) else { return };
    let _ = identify(&parsed.hardware);
    if let Some(block) = &parsed.hardware.block {
        let _ = choose_disk(&block.disks, &DiskHints::default(), 0);
    }
    // Whatever parses once must parse the same after a trip through the typed model.
    let bytes = serde_json::to_vec(&parsed.hardware).expect("the model serializes");
    let again = parse(&bytes).expect("the model's own JSON parses");
    assert_eq!(again.hardware, parsed.hardware);
});
