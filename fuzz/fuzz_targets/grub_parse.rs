//! GRUB configurations can be read back from a served directory or an operator's file, so the
//! parser sees untrusted text.
//!
//! Run with `cargo +nightly fuzz run grub_parse` (libFuzzer) or `scripts/fuzz.sh grub_parse`
//! (AFL++, stable); seeded from `fuzz/seeds/grub_parse/` (the GRUB snapshots of
//! `ipxe-script/tests/it/snapshots/` without their insta header).
#![cfg_attr(not(feature = "afl"), no_main)]

use rhcos_metal_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ipxe_script::grub::words(text);
    let _ = ipxe_script::grub::ConfigName::parse(text);
    let Ok(first) = ipxe_script::grub::parse(text) else {
        return;
    };
    // What parses renders to text that parses back to the same model, and rendering is stable.
    let rendered = first.render();
    let second = ipxe_script::grub::parse(&rendered).expect("rendered text parses");
    assert_eq!(second, first, "rendered:\n{rendered}");
    assert_eq!(second.render(), rendered, "render is stable");
});
