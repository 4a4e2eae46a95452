//! Image metadata (`stream.json`, legacy `rhcos.json`) is downloaded, then drives which
//! artifacts get fetched and which hashes they must match.
//!
//! Run with `cargo +nightly fuzz run stream_metadata`; seed the corpus with the metadata
//! fixtures under `rhcos-images/tests/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rhcos_images::Metadata;

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = Metadata::from_slice(data, "fuzz") else {
        return;
    };
    for arch in meta.architectures() {
        let _ = meta.available(&arch);
    }
    let _ = meta.available("no-such-arch");
});
