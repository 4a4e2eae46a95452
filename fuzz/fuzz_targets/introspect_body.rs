//! The introspection body parser sees network input: throw anything at it.
//!
//! Run with `cargo +nightly fuzz run introspect_body` (libFuzzer) or `scripts/fuzz.sh
//! introspect_body` (AFL++, stable); seeded from `introspect/tests/fixtures/*.json`.
#![cfg_attr(not(feature = "afl"), no_main)]

use rhcos_introspect::{DiskHints, choose_disk, identify, parse};
use rhcos_metal_fuzz::fuzz_target;

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
