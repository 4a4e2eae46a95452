//! Era-aware install selection over the real fixtures.

use rhcos_images::{Error, InstallOptions, InstallerEra, Metadata};

use super::{FCOS, LEGACY_41, RHCOS_411, load};

fn opts(sector_size: u32, want_image: bool) -> InstallOptions {
    InstallOptions {
        sector_size,
        want_image,
        ..InstallOptions::default()
    }
}

/// `(era, kernel, initramfs, rootfs, image)` file names of an install set.
fn check(meta: &Metadata, arch: &str, o: InstallOptions, expected: [&str; 5]) {
    let set = meta.install_set(arch, o).unwrap();
    let name = |a: Option<&rhcos_images::Artifact>| a.map_or("-".to_owned(), |a| a.name.clone());
    let got = [
        format!("{:?}", set.era),
        set.kernel.name.clone(),
        set.initramfs.name.clone(),
        name(set.rootfs.as_ref()),
        name(set.image.as_ref()),
    ];
    assert_eq!(got, expected.map(str::to_owned), "{arch} {o:?}");
    assert_eq!(set.sector_size, o.sector_size);
}

#[test]
fn fcos_stream_is_live_with_xz_images() {
    let meta = load(FCOS);
    let p = "fedora-coreos-34.20211016.3.0-";
    let live = |img: &str| {
        [
            "Live".to_owned(),
            format!("{p}live-kernel-x86_64"),
            format!("{p}live-initramfs.x86_64.img"),
            format!("{p}live-rootfs.x86_64.img"),
            img.to_owned(),
        ]
    };
    let cases = [
        (opts(512, true), live(&format!("{p}metal.x86_64.raw.xz"))),
        (opts(4096, true), live(&format!("{p}metal4k.x86_64.raw.xz"))),
        (opts(4096, false), live("-")),
    ];
    for (o, expected) in cases {
        check(&meta, "x86_64", o, expected.each_ref().map(String::as_str));
    }
    let set = meta.install_set("aarch64", opts(4096, true)).unwrap();
    assert_eq!(
        set.image.unwrap().name,
        format!("{p}metal4k.aarch64.raw.xz")
    );

    // Every artifact carries its hash and the stream's own signature URL.
    let set = meta
        .install_set("x86_64", InstallOptions::default())
        .unwrap();
    assert_eq!(set.release, "34.20211016.3.0");
    assert_eq!(set.artifacts().len(), 4);
    for a in set.artifacts() {
        assert_eq!(a.sha256.len(), 64);
        assert_eq!(a.signature_url(), format!("{}.sig", a.location));
        assert_eq!(a.signature.as_deref(), Some(a.signature_url().as_str()));
    }
}

#[test]
fn rhcos_411_stream_is_live_with_gz_images() {
    let meta = load(RHCOS_411);
    let set = meta.install_set("x86_64", opts(512, true)).unwrap();
    assert_eq!(set.era, InstallerEra::Live);
    let image = set.image.unwrap();
    assert!(
        image.name.ends_with("-metal.x86_64.raw.gz"),
        "{}",
        image.name
    );
    assert!(image.uncompressed_sha256.is_some());
    // RHCOS stream files name no signature: the convention `<location>.sig` applies.
    assert_eq!(image.signature, None);
    assert_eq!(image.signature_url(), format!("{}.sig", image.location));
    let set = meta.install_set("aarch64", opts(4096, true)).unwrap();
    assert!(set.image.unwrap().name.ends_with("-metal4k.aarch64.raw.gz"));
    assert!(set.rootfs.unwrap().name.contains("live-rootfs"));
}

#[test]
fn legacy_41_is_the_installer_kernel_and_always_has_an_image() {
    let meta = load(LEGACY_41);
    let p = "rhcos-410.8.20190520.0-";
    let legacy = |img: &str| {
        [
            "Legacy".to_owned(),
            format!("{p}installer-kernel"),
            format!("{p}installer-initramfs.img"),
            "-".to_owned(),
            format!("{p}{img}"),
        ]
    };
    let uefi = InstallOptions {
        uefi: true,
        ..InstallOptions::default()
    };
    let cases = [
        (opts(512, true), legacy("metal-bios.raw.gz")),
        // The legacy installer cannot install without `coreos.inst.image_url`.
        (opts(512, false), legacy("metal-bios.raw.gz")),
        (uefi, legacy("metal-uefi.raw.gz")),
    ];
    for (o, expected) in cases {
        check(&meta, "x86_64", o, expected.each_ref().map(String::as_str));
    }
    let set = meta.install_set("x86_64", opts(512, true)).unwrap();
    assert_eq!(set.image.as_ref().unwrap().size, Some(719_954_527));
    assert_eq!(set.release, "410.8.20190520.0");
    assert!(set.image.unwrap().signature.is_none());
}

#[test]
fn typed_errors() {
    let e = load(LEGACY_41)
        .install_set("x86_64", opts(4096, true))
        .unwrap_err();
    assert!(matches!(&e, Error::No4kImage { arch, release }
        if arch == "x86_64" && release == "410.8.20190520.0"));
    assert_eq!(
        e.to_string(),
        "no 4k metal image for x86_64 in release 410.8.20190520.0"
    );
    let e = load(FCOS)
        .install_set("x86_64", opts(520, true))
        .unwrap_err();
    assert!(matches!(
        e,
        Error::UnsupportedSectorSize { sector_size: 520 }
    ));
    let e = load(FCOS)
        .install_set("s390x", opts(512, true))
        .unwrap_err();
    assert!(matches!(e, Error::UnknownArch { .. }));
}

fn stream(formats: &str) -> Metadata {
    let file = |n: &str| {
        format!(
            r#"{{"location": "https://example.com/{n}", "sha256": "{}"}}"#,
            "a".repeat(64)
        )
    };
    let formats: Vec<String> = formats
        .split(',')
        .filter(|f| !f.is_empty())
        .map(|f| match f {
            "pxe" => format!(
                r#""pxe": {{"kernel": {}, "initramfs": {}, "rootfs": {}}}"#,
                file("k"),
                file("i.img"),
                file("r.img")
            ),
            disk => format!(r#""{disk}": {{"disk": {}}}"#, file(&format!("img.{disk}"))),
        })
        .collect();
    let json = format!(
        r#"{{"stream": "s", "architectures": {{"x86_64": {{"artifacts": {{"metal": {{
            "release": "1", "formats": {{{}}}}}}}}}}}}}"#,
        formats.join(",")
    );
    Metadata::from_slice(json.as_bytes(), "test").unwrap()
}

#[test]
fn gzip_is_preferred_when_both_compressions_exist() {
    let meta = stream("pxe,raw.gz,raw.xz,4k.raw.xz");
    let image = |o| meta.install_set("x86_64", o).unwrap().image.unwrap().name;
    assert_eq!(image(opts(512, true)), "img.raw.gz");
    assert_eq!(image(opts(4096, true)), "img.4k.raw.xz");
    let e = stream("pxe,raw.xz")
        .install_set("x86_64", opts(4096, true))
        .unwrap_err();
    assert!(matches!(e, Error::No4kImage { .. }), "{e}");
    let e = stream("raw.xz")
        .install_set("x86_64", opts(512, true))
        .unwrap_err();
    assert!(matches!(&e, Error::UnknownArtifact { artifact, .. } if artifact == "kernel"));
}

#[test]
fn legacy_meta_with_live_images_is_live() {
    let img = |n: &str| {
        format!(
            r#""{n}": {{"path": "x-{n}", "sha256": "{}"}}"#,
            "b".repeat(64)
        )
    };
    let json = format!(
        r#"{{"baseURI": "https://example.com/", "buildid": "46.82.1", "images": {{{}}}}}"#,
        [
            "live-kernel",
            "live-initramfs",
            "live-rootfs",
            "metal",
            "metal4k",
            "kernel"
        ]
        .map(img)
        .join(",")
    );
    let meta = Metadata::from_slice(json.as_bytes(), "meta.json").unwrap();
    check(
        &meta,
        "x86_64",
        opts(4096, true),
        [
            "Live",
            "x-live-kernel",
            "x-live-initramfs",
            "x-live-rootfs",
            "x-metal4k",
        ],
    );
    check(
        &meta,
        "x86_64",
        opts(512, false),
        [
            "Live",
            "x-live-kernel",
            "x-live-initramfs",
            "x-live-rootfs",
            "-",
        ],
    );
}
