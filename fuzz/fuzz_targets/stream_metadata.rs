//! Image metadata (`stream.json`, legacy `rhcos.json`) is downloaded, then drives which artifacts
//! get fetched and which hashes they must match.
//!
//! Run with `cargo +nightly fuzz run stream_metadata` (libFuzzer) or `scripts/fuzz.sh
//! stream_metadata` (AFL++, stable); seeded from the metadata fixtures under `rhcos-images/tests/`.
#![cfg_attr(not(feature = "afl"), no_main)]

use rhcos_images::Metadata;
use rhcos_metal_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = Metadata::from_slice(data, "fuzz") else {
        return;
    };
    for arch in meta.architectures() {
        let _ = meta.available(&arch);
    }
    let _ = meta.available("no-such-arch");
});
