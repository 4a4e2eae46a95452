//! A metal image's GPT and EFI system partition are read to find the shim and GRUB a Secure
//! Boot host is served; the image is verified first, but the reader must not trust it anyway.
//!
//! Run with `cargo +nightly fuzz run esp_extract` (libFuzzer) or `scripts/fuzz.sh esp_extract`
//! (AFL++, stable); seeded with two tiny images (512- and 4096-byte sectors, a FAT ESP with
//! `EFI/redhat/{shimx64,grubx64}.efi`) made by `mkfs.vfat` and `mcopy`.
#![cfg_attr(not(feature = "afl"), no_main)]

use rhcos_images::esp::extract_boot_chain;
use rhcos_metal_fuzz::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(chain) = extract_boot_chain(data) {
        // What was found came from the input.
        assert!(chain.shim.len() + chain.grub.len() <= data.len() * 2);
    }
});
