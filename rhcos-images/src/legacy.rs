//! The legacy RHCOS `rhcos.json` / coreos-assembler build `meta.json` (OpenShift 4.1 to 4.7).
//!
//! Download URL = `baseURI` + `images.<name>.path`. Sizes are JSON strings in some files and
//! numbers in others, so both are accepted.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A legacy build metadata document. Fields this crate does not use (`amis`, `oscontainer`, ...)
/// are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyMeta {
    /// Base URL of the build directory, with a trailing slash.
    #[serde(rename = "baseURI")]
    pub base_uri: String,
    /// Build identifier, for example `410.8.20190520.0`.
    #[serde(default)]
    pub buildid: String,
    /// Architecture from newer `meta.json` files; `rhcos.json` from 4.1 has none (x86_64).
    #[serde(
        rename = "coreos-assembler.basearch",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub basearch: Option<String>,
    /// Images keyed by name: `kernel`, `initramfs`, `metal-bios`, `metal`, `live-kernel`, ...
    pub images: BTreeMap<String, LegacyImage>,
}

/// One image of a legacy build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LegacyImage {
    /// File name relative to `baseURI`.
    pub path: String,
    /// SHA-256 of the file as downloaded.
    pub sha256: String,
    /// Size of the file as downloaded.
    #[serde(
        default,
        deserialize_with = "u64_or_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<u64>,
    /// SHA-256 after decompression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_sha256: Option<String>,
    /// Size after decompression.
    #[serde(
        default,
        deserialize_with = "u64_or_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub uncompressed_size: Option<u64>,
}

fn u64_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u64),
        Str(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Num(n)) => Ok(Some(n)),
        Some(Raw::Str(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("size {s:?} is not an integer"))),
    }
}
