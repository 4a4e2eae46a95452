//! iPXE scripts can be fetched over HTTP (an existing `boot.ipxe` to read back or convert), so the
//! tolerant parser sees untrusted text.
//!
//! Run with `cargo +nightly fuzz run ipxe_parse` (libFuzzer) or `scripts/fuzz.sh ipxe_parse`
//! (AFL++, stable); seeded from `ipxe-script/tests/fixtures/`.
#![cfg_attr(not(feature = "afl"), no_main)]

use rhcos_metal_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = ipxe_script::parse(text).script;
    // `parse` documents that its result is a fixed point of render and parse.
    let rendered = first.render();
    let second = ipxe_script::parse(&rendered).script;
    assert_eq!(second, first, "rendered:\n{rendered}");
    assert_eq!(second.render(), rendered, "render is stable");
});
