//! Reading the shim and GRUB from a metal image's ESP: real FAT filesystems made by Debian's
//! `mkfs.vfat` and filled by mtools' `mcopy`, wrapped in a GPT written here.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use rhcos_images::Cache;
use rhcos_images::Compression;
use rhcos_images::esp::{EspError, cache_boot_chain, extract_boot_chain};
use sha2::{Digest, Sha256};

const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
const LINUX_TYPE: [u8; 16] = [
    0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
];

/// Whether the tools are here; under `CI=true` their absence is a failure.
fn tools() -> bool {
    let ok = ["mkfs.vfat", "mcopy", "mmd"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        ok || std::env::var("CI").as_deref() != Ok("true"),
        "mkfs.vfat and mtools are required in CI (scripts/install-deps.sh installs dosfstools, mtools)"
    );
    if !ok {
        eprintln!("skipping: mkfs.vfat or mtools missing");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 2 MiB FAT filesystem holding `files` (`EFI/redhat/shimx64.efi`, bytes).
fn vfat(dir: &Path, files: &[(&str, &[u8])]) -> Vec<u8> {
    let img = dir.join("esp.vfat");
    let _ = std::fs::remove_file(&img);
    std::fs::File::create(&img)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    run(Command::new("mkfs.vfat")
        .args(["-n", "EFI-SYSTEM"])
        .arg(&img));
    let mut made = std::collections::BTreeSet::new();
    for (path, bytes) in files {
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            let d = parts[..i].join("/");
            if made.insert(d.clone()) {
                run(Command::new("mmd")
                    .arg("-i")
                    .arg(&img)
                    .arg(format!("::/{d}")));
            }
        }
        let src = dir.join("src");
        std::fs::write(&src, bytes).unwrap();
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(&src)
            .arg(format!("::/{path}")));
    }
    std::fs::read(&img).unwrap()
}

/// An image: a GPT at `sector` bytes per sector with a Linux partition and then `esp` as the
/// EFI system partition (or as a Linux one when `esp_type` is false), 1 MiB-aligned.
fn gpt_image(sector: u64, esp: &[u8], esp_type: bool) -> Vec<u8> {
    let mib = 1u64 << 20;
    let mut image = vec![0u8; (4 * mib) as usize + esp.len()];
    let h = sector as usize;
    image[h..h + 8].copy_from_slice(b"EFI PART");
    image[h + 72..h + 80].copy_from_slice(&2u64.to_le_bytes());
    image[h + 80..h + 84].copy_from_slice(&128u32.to_le_bytes());
    image[h + 84..h + 88].copy_from_slice(&128u32.to_le_bytes());
    let entry = |image: &mut Vec<u8>, i: usize, ty: [u8; 16], start: u64, len: u64| {
        let at = 2 * sector as usize + i * 128;
        image[at..at + 16].copy_from_slice(&ty);
        image[at + 32..at + 40].copy_from_slice(&(start / sector).to_le_bytes());
        image[at + 40..at + 48].copy_from_slice(&((start + len) / sector - 1).to_le_bytes());
    };
    entry(&mut image, 0, LINUX_TYPE, mib, mib);
    entry(
        &mut image,
        1,
        if esp_type { ESP_TYPE } else { LINUX_TYPE },
        3 * mib,
        esp.len() as u64,
    );
    image[(3 * mib) as usize..(3 * mib) as usize + esp.len()].copy_from_slice(esp);
    image
}

const SHIM: &[u8] = b"MZ shim, signed by Microsoft";
const GRUB: &[u8] = b"MZ grub, signed by the vendor";

#[test]
fn reads_the_vendor_shim_and_grub_at_both_sector_sizes() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let esp = vfat(
        dir.path(),
        &[
            ("EFI/BOOT/BOOTX64.EFI", b"MZ fallback shim"),
            ("EFI/BOOT/fbx64.efi", b"MZ fallback"),
            ("EFI/redhat/shimx64.efi", SHIM),
            ("EFI/redhat/grubx64.efi", GRUB),
            ("EFI/redhat/grub.cfg", b"set x=1\n"),
        ],
    );
    for sector in [512, 4096] {
        let chain = extract_boot_chain(&gpt_image(sector, &esp, true)[..]).unwrap();
        assert_eq!(chain.vendor, "redhat");
        assert_eq!(chain.shim, SHIM);
        assert_eq!(chain.grub, GRUB);
        assert_eq!(chain.shim_path, "EFI/redhat/shimx64.efi");
        assert_eq!(chain.grub_path, "EFI/redhat/grubx64.efi");
    }
}

#[test]
fn without_a_vendor_shim_the_fallback_bootx64_is_the_shim() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let esp = vfat(
        dir.path(),
        &[
            ("EFI/BOOT/BOOTX64.EFI", SHIM),
            ("EFI/fedora/grubx64.efi", GRUB),
        ],
    );
    let chain = extract_boot_chain(&gpt_image(512, &esp, true)[..]).unwrap();
    assert_eq!(
        (chain.vendor.as_str(), chain.shim_path.as_str()),
        ("fedora", "EFI/BOOT/BOOTX64.EFI")
    );
    assert_eq!((chain.shim.as_slice(), chain.grub.as_slice()), (SHIM, GRUB));
}

#[test]
fn malformed_images_are_typed_errors() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = vfat(
        dir.path(),
        &[
            ("EFI/redhat/shimx64.efi", SHIM),
            ("EFI/redhat/grubx64.efi", GRUB),
        ],
    );
    let err = |image: &[u8]| extract_boot_chain(image).unwrap_err();

    assert!(
        matches!(err(&[0u8; 20000]), EspError::NoGpt),
        "{:?}",
        err(&[0u8; 20000])
    );
    assert!(matches!(err(b"short"), EspError::NoGpt));
    assert!(matches!(
        err(&gpt_image(512, &good, false)),
        EspError::NoEsp
    ));
    let image = gpt_image(512, &good, true);
    let e = err(&image[..(3 << 20) + 1000]);
    assert!(
        matches!(
            e,
            EspError::Truncated {
                what: "EFI system partition",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(
        err(&gpt_image(512, &vec![0u8; 1 << 20], true)),
        EspError::NotFat(_)
    ));

    let two = vfat(
        dir.path(),
        &[
            ("EFI/redhat/shimx64.efi", SHIM),
            ("EFI/redhat/grubx64.efi", GRUB),
            ("EFI/fedora/shimx64.efi", SHIM),
            ("EFI/fedora/grubx64.efi", GRUB),
        ],
    );
    let e = err(&gpt_image(512, &two, true));
    assert!(matches!(e, EspError::TwoVendors(..)), "{e:?}");

    let no_grub = vfat(dir.path(), &[("EFI/redhat/shimx64.efi", SHIM)]);
    let e = err(&gpt_image(512, &no_grub, true));
    assert!(matches!(e, EspError::Missing(_)), "{e:?}");
    assert!(e.to_string().contains("grubx64.efi"), "{e}");
    let no_efi = vfat(dir.path(), &[("boot/x", b"x")]);
    let e = err(&gpt_image(512, &no_efi, true));
    assert_eq!(
        e.to_string(),
        "the EFI system partition has no EFI directory"
    );

    // An ESP claiming to be larger than anything read into memory.
    let mut huge = gpt_image(512, &good, true);
    let at = 2 * 512 + 128 + 40;
    huge[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        err(&huge),
        EspError::EspTooLarge { .. } | EspError::BadGpt(_)
    ));
}

#[test]
fn the_chain_is_cached_under_its_sha256_with_the_image_it_came_from() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let esp = vfat(
        dir.path(),
        &[
            ("EFI/fedora/shimx64.efi", SHIM),
            ("EFI/fedora/grubx64.efi", GRUB),
        ],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&gpt_image(4096, &esp, true)).unwrap();
    let gz = gz.finish().unwrap();
    let image_sha = hex::encode(Sha256::digest(&gz));
    let cache = Cache::open(dir.path().join("cache")).unwrap();

    let e = cache_boot_chain(&cache, &image_sha, Compression::Gzip).unwrap_err();
    assert!(e.to_string().contains("no verified image"), "{e}");

    std::fs::write(cache.path_for(&image_sha).unwrap(), &gz).unwrap();
    let chain = cache_boot_chain(&cache, &image_sha, Compression::Gzip).unwrap();
    assert_eq!(chain.shim_sha256, hex::encode(Sha256::digest(SHIM)));
    assert_eq!(chain.grub_sha256, hex::encode(Sha256::digest(GRUB)));
    assert_eq!(std::fs::read(chain.shim(&cache).unwrap()).unwrap(), SHIM);
    assert_eq!(std::fs::read(chain.grub(&cache).unwrap()).unwrap(), GRUB);
    let record = cache.root().join(format!("{image_sha}.boot-chain.json"));
    assert!(record.is_file());

    // A second run reads the record, not the image: it works with the image gone.
    std::fs::remove_file(cache.path_for(&image_sha).unwrap()).unwrap();
    assert_eq!(
        cache_boot_chain(&cache, &image_sha, Compression::Gzip).unwrap(),
        chain
    );
    // Nothing temporary is left behind.
    assert_eq!(
        std::fs::read_dir(cache.root().join("tmp")).unwrap().count(),
        0
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Flipped bytes anywhere in the GPT or the FAT structures give a result or a typed
    /// error, never a panic.
    #[test]
    fn corrupted_images_never_panic(flips in proptest::collection::vec((0usize..(3 << 20) + 65536, any::<u8>()), 1..40)) {
        static IMAGE: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
        let image = IMAGE.get_or_init(|| {
            tools().then(|| {
                let dir = tempfile::tempdir().unwrap();
                let esp = vfat(dir.path(), &[("EFI/redhat/shimx64.efi", SHIM), ("EFI/redhat/grubx64.efi", GRUB)]);
                gpt_image(512, &esp, true)
            })
        });
        let Some(image) = image else { return Ok(()) };
        let mut bad = image.clone();
        for (at, byte) in flips {
            // Concentrated on the table and the FAT's first 64 KiB, where the structures are.
            let at = if at < 3 << 20 { at % 8192 } else { (3 << 20) + at % 65536 };
            bad[at] = byte;
        }
        let _ = extract_boot_chain(&bad[..]);
    }
}

/// The fuzz target's seeds are valid inputs (no tools needed: they are committed bytes).
#[test]
fn the_fuzz_seeds_hold_a_chain() {
    for name in ["gpt512-redhat.raw", "gpt4k-redhat.raw"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds/esp_extract")
            .join(name);
        let chain = extract_boot_chain(&std::fs::read(&path).unwrap()[..]).unwrap();
        assert_eq!(
            (chain.shim.as_slice(), chain.grub.as_slice()),
            (&b"MZshim"[..], &b"MZgrub"[..]),
            "{name}"
        );
    }
}

/// An image the `esp_extract` fuzz target found: its ESP has a directory entry whose cluster
/// number makes fatfs 0.3.6 underflow (a panic inside the crate); it is a typed error here.
#[test]
fn a_fat_that_makes_fatfs_panic_is_a_typed_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/esp-fatfs-panic.raw");
    let e = extract_boot_chain(&std::fs::read(path).unwrap()[..]).unwrap_err();
    assert!(matches!(e, EspError::NotFat(_)), "{e:?}");
}

/// An image the `esp_extract` fuzz target found: a binary whose directory entry claims more
/// bytes than its whole file system, its cluster chain looping, so reading it repeated the same
/// clusters into more output than the image holds. It is a typed error now.
#[test]
fn a_file_larger_than_its_file_system_is_a_typed_error() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/esp-looping-cluster-chain.raw");
    let image = std::fs::read(path).unwrap();
    match extract_boot_chain(&image[..]) {
        Err(EspError::NotFat(why)) => assert!(why.contains("claims"), "{why}"),
        other => panic!("{other:?}"),
    }
}
