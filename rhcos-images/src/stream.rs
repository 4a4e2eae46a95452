//! CoreOS stream metadata (`stream.json`), as published for FCOS and shipped by the OpenShift
//! installer for RHCOS since 4.8.
//!
//! Field names follow `coreos/stream-metadata-go` `stream/stream.go`. Cloud image tables
//! (`images`, `rhel-coreos-extensions`) are kept as raw JSON: this crate only needs artifacts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole stream document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Stream {
    /// Stream name: `stable`, `rhcos-4.11`, ...
    pub stream: String,
    /// Generation metadata; the FCOS generator fixture has none, so it is optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<StreamMetadata>,
    /// Per-architecture content, keyed by `x86_64`, `aarch64`, `ppc64le`, `s390x`.
    pub architectures: BTreeMap<String, Arch>,
}

/// The `metadata` object of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StreamMetadata {
    /// RFC 3339 time of the last change, kept as the string it is.
    pub last_modified: String,
    /// The tool that produced the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
}

/// One architecture's artifacts and cloud images.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Arch {
    /// Downloadable artifacts keyed by platform (`metal`, `qemu`, `aws`, ...).
    pub artifacts: BTreeMap<String, PlatformArtifacts>,
    /// Cloud image identifiers, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<serde_json::Value>,
    /// RHCOS-only extensions, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhel_coreos_extensions: Option<serde_json::Value>,
}

/// The artifacts of one platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformArtifacts {
    /// Release (build) identifier; an opaque string.
    pub release: String,
    /// Formats keyed by name: `raw.gz`, `4k.raw.xz`, `pxe`, `iso`, `qcow2.xz`, ...
    pub formats: BTreeMap<String, ImageFormat>,
}

/// The files of one format. Disk formats use `disk`; `pxe` uses the other three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFormat {
    /// The disk image (raw, qcow2, iso, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<StreamArtifact>,
    /// The live kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<StreamArtifact>,
    /// The live initramfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<StreamArtifact>,
    /// The live root filesystem image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<StreamArtifact>,
}

/// One downloadable file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StreamArtifact {
    /// Download URL.
    pub location: String,
    /// Detached GPG signature URL (absent in RHCOS 4.11 files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// SHA-256 of the file as downloaded.
    pub sha256: String,
    /// SHA-256 after decompression (disk images only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_sha256: Option<String>,
}
