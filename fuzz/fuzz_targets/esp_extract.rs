//! A metal image's GPT and EFI system partition are read to find the shim and GRUB a Secure
//! Boot host is served; the image is verified first, but the reader must not trust it anyway.
//!
//! Run with `cargo +nightly fuzz run esp_extract` (libFuzzer) or `scripts/fuzz.sh esp_extract`
//! (AFL++, stable); seeded with two tiny images (512- and 4096-byte sectors, a FAT ESP with
//! `EFI/redhat/{shimx64,grubx64}.efi`) made by `mkfs.vfat` and `mcopy`.
#![cfg_attr(not(feature = "afl"), no_main)]

use rhcos_images::esp::extract_boot_chain;
use rhcos_metal_fuzz::fuzz_target;

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // The engines' panic hook aborts at once; the reader catches fatfs's own panics (a known
    // upstream bug on malformed FATs, a typed error) so put the default hook back. A panic
    // that escapes `extract_boot_chain` still aborts: both engines wrap each input in
    // `catch_unwind` and abort on a panic.
    HOOK.call_once(|| drop(std::panic::take_hook()));
    if let Ok(chain) = extract_boot_chain(data) {
        // What was found came from the input.
        assert!(chain.shim.len() + chain.grub.len() <= data.len() * 2);
    }
});
