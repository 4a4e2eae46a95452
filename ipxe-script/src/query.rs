//! The server's side of [`ChainScript::per_host`](crate::ChainScript::per_host): reading the query back.

use std::fmt;

/// The query keys [`ChainScript::per_host`](crate::ChainScript::per_host) writes, in order.
pub(crate) const KEYS: [&str; 4] = ["mac", "uuid", "arch", "platform"];

/// iPXE's `${buildarch}`: the architecture iPXE itself was built for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BuildArch {
    /// `i386`: 32-bit x86, including the BIOS builds on 64-bit machines (`undionly.kpxe`, ROMs).
    I386,
    /// `x86_64`.
    X86_64,
    /// `arm32`.
    Arm32,
    /// `arm64`.
    Arm64,
    /// `riscv64`.
    Riscv64,
    /// `loong64`.
    Loong64,
    /// Anything else, verbatim.
    Other(String),
}

impl BuildArch {
    /// Reads a `${buildarch}` value.
    pub fn parse(value: &str) -> Self {
        match value {
            "i386" => BuildArch::I386,
            "x86_64" => BuildArch::X86_64,
            "arm32" => BuildArch::Arm32,
            "arm64" => BuildArch::Arm64,
            "riscv64" => BuildArch::Riscv64,
            "loong64" => BuildArch::Loong64,
            other => BuildArch::Other(other.to_owned()),
        }
    }

    /// The `${buildarch}` spelling.
    pub fn as_str(&self) -> &str {
        match self {
            BuildArch::I386 => "i386",
            BuildArch::X86_64 => "x86_64",
            BuildArch::Arm32 => "arm32",
            BuildArch::Arm64 => "arm64",
            BuildArch::Riscv64 => "riscv64",
            BuildArch::Loong64 => "loong64",
            BuildArch::Other(s) => s,
        }
    }
}

impl fmt::Display for BuildArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// iPXE's `${platform}`: the firmware interface it runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Platform {
    /// `pcbios`: legacy BIOS.
    Pcbios,
    /// `efi`: UEFI.
    Efi,
    /// `linux`: iPXE as a Linux userspace program (tests).
    Linux,
    /// Anything else, verbatim.
    Other(String),
}

impl Platform {
    /// Reads a `${platform}` value.
    pub fn parse(value: &str) -> Self {
        match value {
            "pcbios" => Platform::Pcbios,
            "efi" => Platform::Efi,
            "linux" => Platform::Linux,
            other => Platform::Other(other.to_owned()),
        }
    }

    /// The `${platform}` spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Platform::Pcbios => "pcbios",
            Platform::Efi => "efi",
            Platform::Linux => "linux",
            Platform::Other(s) => s,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a booting host said about itself in the per-host URL of
/// [`ChainScript::per_host`](crate::ChainScript::per_host).
///
/// Values are as iPXE expanded them; empty values (a firmware without an SMBIOS UUID, say)
/// come back as `None`. The MAC is left as text (`52-54-00-12-34-56`) for the caller's own MAC
/// type to parse.
///
/// ```
/// use ipxe_script::{BuildArch, HostQuery, Platform};
/// // The pairs of `?mac=52-54-00-12-34-56&uuid=&arch=x86_64&platform=efi`, as the HTTP server
/// // decoded them.
/// let q = HostQuery::from_pairs([
///     ("mac", "52-54-00-12-34-56"),
///     ("uuid", ""),
///     ("arch", "x86_64"),
///     ("platform", "efi"),
/// ]);
/// assert_eq!(q.mac.as_deref(), Some("52-54-00-12-34-56"));
/// assert_eq!(q.uuid, None);
/// assert_eq!(q.arch, Some(BuildArch::X86_64));
/// assert_eq!(q.platform, Some(Platform::Efi));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HostQuery {
    /// `${mac:hexhyp}`.
    pub mac: Option<String>,
    /// `${uuid}`, the SMBIOS system UUID.
    pub uuid: Option<String>,
    /// `${buildarch}`.
    pub arch: Option<BuildArch>,
    /// `${platform}`.
    pub platform: Option<Platform>,
}

impl HostQuery {
    /// Reads the decoded query pairs of a request (the HTTP server's one query parser produces
    /// them; this crate does no parsing of its own). Unknown keys are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut q = HostQuery::default();
        for (key, value) in pairs {
            let value = (!value.is_empty()).then_some(value);
            match key {
                "mac" => q.mac = value.map(str::to_owned),
                "uuid" => q.uuid = value.map(str::to_owned),
                "arch" => q.arch = value.map(BuildArch::parse),
                "platform" => q.platform = value.map(Platform::parse),
                _ => {}
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: HostQuery) {
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")));
        assert_eq!(HostQuery::from_pairs(pairs), expected, "query {query:?}");
    }

    #[test]
    fn queries() {
        check("", HostQuery::default());
        check(
            "mac=52-54-00-12-34-56&uuid=1b4e28ba-2fa1-11d2-883f-0016d3cca427&arch=i386&platform=pcbios",
            HostQuery {
                mac: Some("52-54-00-12-34-56".into()),
                uuid: Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into()),
                arch: Some(BuildArch::I386),
                platform: Some(Platform::Pcbios),
            },
        );
        check(
            "cluster=ocp&arch=mips&platform=coreboot&mac",
            HostQuery {
                arch: Some(BuildArch::Other("mips".into())),
                platform: Some(Platform::Other("coreboot".into())),
                ..Default::default()
            },
        );
        assert_eq!(KEYS.len(), 4);
    }
}
