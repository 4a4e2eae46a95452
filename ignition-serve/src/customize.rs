//! Per-host changes to a role config, emitted merged or as a pointer config.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::{Config, Spec, sha512_hex};
use crate::error::{Error, Result};

/// Where NetworkManager keyfiles go.
pub const KEYFILE_DIR: &str = "/etc/NetworkManager/system-connections";

/// A file to write on the host.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Absolute path in the installed system.
    pub path: String,
    /// The contents (emitted as a `data:` URL).
    #[serde(default)]
    pub contents: Vec<u8>,
    /// Permission bits, such as `0o644`. `None` means 0644.
    #[serde(default)]
    pub mode: Option<u32>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contents may be secrets.
        f.debug_struct("File")
            .field("path", &self.path)
            .field("len", &self.contents.len())
            .field("mode", &self.mode)
            .finish()
    }
}

impl File {
    /// A file with mode 0644.
    pub fn new(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        File {
            path: path.into(),
            contents: contents.into(),
            mode: None,
        }
    }
}

/// A systemd unit drop-in.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropin {
    /// File name, such as `10-override.conf`.
    pub name: String,
    /// The drop-in's contents.
    pub contents: String,
}

/// A systemd unit to add (or to replace the role config's unit of the same name).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    /// Unit name, such as `example.service`.
    pub name: String,
    /// The unit file, or `None` to leave an existing unit file alone.
    #[serde(default)]
    pub contents: Option<String>,
    /// Enable (`Some(true)`) or disable the unit.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Mask the unit.
    #[serde(default)]
    pub mask: Option<bool>,
    /// Drop-ins.
    #[serde(default)]
    pub dropins: Vec<Dropin>,
}

// Units can carry credentials in their command lines: Debug shows names only.
impl fmt::Debug for Dropin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dropin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unit")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("mask", &self.mask)
            .field("dropins", &self.dropins)
            .finish_non_exhaustive()
    }
}

/// A NetworkManager connection profile, written to
/// `/etc/NetworkManager/system-connections/<name>.nmconnection` with mode 0600
/// (NetworkManager ignores keyfiles other users can read).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyfile {
    /// File stem (usually the connection id).
    pub name: String,
    /// The keyfile text.
    pub contents: String,
}

impl fmt::Debug for Keyfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keyfiles may hold Wi-Fi or 802.1X secrets.
        f.debug_struct("Keyfile")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A static IPv4 configuration for one interface, rendered as a [`Keyfile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticIpv4 {
    /// Interface name, such as `eno1`.
    pub interface: String,
    /// The address.
    pub address: Ipv4Addr,
    /// Prefix length, such as 24.
    pub prefix: u8,
    /// Default gateway.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
}

impl Keyfile {
    /// A keyfile for a static IPv4 address on one Ethernet interface, IPv6 disabled.
    pub fn static_ipv4(cfg: &StaticIpv4) -> Result<Keyfile> {
        check_name("network.interface", &cfg.interface)?;
        if cfg.prefix > 32 {
            return Err(Error::Customization {
                field: "network.prefix".to_owned(),
                reason: "an ipv4 prefix is at most 32",
            });
        }
        let mut s = format!(
            "[connection]\nid={i}\ntype=ethernet\ninterface-name={i}\nautoconnect=true\n\n[ipv4]\nmethod=manual\naddress1={a}/{p}",
            i = cfg.interface,
            a = cfg.address,
            p = cfg.prefix
        );
        if let Some(gw) = cfg.gateway {
            s.push_str(&format!(",{gw}"));
        }
        s.push('\n');
        if cfg.dns.iter().any(IpAddr::is_ipv4) {
            s.push_str("dns=");
            for d in cfg.dns.iter().filter(|d| d.is_ipv4()) {
                s.push_str(&format!("{d};"));
            }
            s.push('\n');
        }
        s.push_str("may-fail=false\n\n[ipv6]\nmethod=disabled\n");
        Ok(Keyfile {
            name: cfg.interface.clone(),
            contents: s,
        })
    }

    /// The keyfile's path on the host.
    pub fn path(&self) -> String {
        format!("{KEYFILE_DIR}/{}.nmconnection", self.name)
    }
}

/// Per-host changes applied on top of a role config.
///
/// Plain data: build it with `..Default::default()`. An empty customization renders the role
/// config unchanged (merged) or as a bare pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customization {
    /// Written to `/etc/hostname`.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Extra files. A file replaces the role config's file at the same path.
    #[serde(default)]
    pub files: Vec<File>,
    /// Extra systemd units. A unit replaces the role config's unit of the same name.
    #[serde(default)]
    pub units: Vec<Unit>,
    /// NetworkManager keyfiles (static network configuration).
    #[serde(default)]
    pub network: Vec<Keyfile>,
    /// SSH keys added to the `core` user.
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
}

impl Customization {
    /// Whether this changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Customization::default()
    }

    /// Every file this customization writes, including `/etc/hostname` and keyfiles, checked.
    pub fn all_files(&self) -> Result<Vec<File>> {
        let mut out = Vec::new();
        if let Some(h) = &self.hostname {
            check_hostname(h)?;
            out.push(File {
                path: "/etc/hostname".to_owned(),
                contents: format!("{h}\n").into_bytes(),
                mode: Some(0o644),
            });
        }
        for (i, f) in self.files.iter().enumerate() {
            check_path(&format!("files[{i}].path"), &f.path)?;
            if f.mode.is_some_and(|m| m > 0o7777) {
                return Err(Error::Customization {
                    field: format!("files[{i}].mode"),
                    reason: "mode is at most 0o7777",
                });
            }
            out.push(f.clone());
        }
        for (i, k) in self.network.iter().enumerate() {
            check_name(&format!("network[{i}].name"), &k.name)?;
            out.push(File {
                path: k.path(),
                contents: k.contents.clone().into_bytes(),
                mode: Some(0o600),
            });
        }
        for i in 1..out.len() {
            if out[..i].iter().any(|f| f.path == out[i].path) {
                return Err(Error::Customization {
                    field: out[i].path.clone(),
                    reason: "two customization files have this path",
                });
            }
        }
        Ok(out)
    }
}

/// How a host's config is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The role config with the customization applied, same spec version. Refused for a
    /// role config that replaces itself (`ignition.config.replace`), which would drop it.
    Merged,
    /// A small config of the role's spec version holding the customization and an
    /// `append` (2.2) / `merge` (3.x) of the role config at `url`, pinned by its sha512.
    ///
    /// Ignition merges the role config over the pointer, so where both define the same file
    /// path or unit the role config wins.
    Pointer {
        /// Where the host fetches the role config, exactly as [`Config::bytes`].
        url: String,
    },
}

/// A config rendered for one host.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The spec version (that of the role config).
    pub spec: Spec,
    /// The JSON to serve.
    pub bytes: Bytes,
    /// The sha512 of `bytes`, lowercase hex.
    pub sha512: String,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("spec", &self.spec)
            .field("len", &self.bytes.len())
            .field("sha512", &self.sha512)
            .finish()
    }
}

impl Rendered {
    /// The hash in Ignition's verification form, `sha512-<hex>`.
    pub fn verification_hash(&self) -> String {
        format!("sha512-{}", self.sha512)
    }
}

/// Apply `custom` to the role config `role`, merged or as a pointer.
///
/// A merged config with an empty customization is the role config's exact bytes.
pub fn render_for_host(role: &Config, custom: &Customization, mode: &Mode) -> Result<Rendered> {
    let spec = role.spec();
    let files = custom.all_files()?;
    for (i, u) in custom.units.iter().enumerate() {
        check_unit_name(&format!("units[{i}].name"), &u.name)?;
        for (j, d) in u.dropins.iter().enumerate() {
            check_name(&format!("units[{i}].dropins[{j}].name"), &d.name)?;
        }
    }
    for (i, k) in custom.ssh_authorized_keys.iter().enumerate() {
        if k.trim().is_empty() || k.contains('\n') {
            return Err(Error::Customization {
                field: format!("ssh_authorized_keys[{i}]"),
                reason: "expected one non-empty line",
            });
        }
    }
    if !spec.is_v2() && spec < Spec::V3_4 {
        for f in &files {
            if f.mode.is_some_and(|m| m > 0o777) {
                return Err(Error::Customization {
                    field: f.path.clone(),
                    reason: "setuid, setgid and sticky bits need spec 2.2 or 3.4 and later",
                });
            }
        }
    }
    let mut value = match mode {
        Mode::Merged => {
            if custom.is_empty() {
                return Ok(Rendered {
                    spec,
                    bytes: role.bytes().clone(),
                    sha512: role.sha512().to_owned(),
                });
            }
            if role
                .value()
                .pointer("/ignition/config/replace/source")
                .is_some_and(|s| !s.is_null())
            {
                // Ignition would fetch the replacement and drop everything next to it.
                return Err(Error::Customization {
                    field: "mode".to_owned(),
                    reason: "the role config is replaced by a remote config, which would drop a merged customization: use a pointer",
                });
            }
            role.value().clone()
        }
        Mode::Pointer { url } => {
            if url.is_empty() || !url.contains("://") || url.chars().any(char::is_whitespace) {
                return Err(Error::InvalidUrl { url: url.clone() });
            }
            json!({
                "ignition": {
                    "version": spec.as_str(),
                    "config": {
                        spec.combine_key(): [{
                            "source": url,
                            "verification": { "hash": role.verification_hash() }
                        }]
                    }
                }
            })
        }
    };
    let root = value
        .as_object_mut()
        .expect("validated configs are objects");
    if !files.is_empty() {
        let storage = child(root, "storage");
        for kind in ["directories", "links"] {
            let clash = storage
                .get(kind)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| n.get("path")?.as_str())
                .find(|p| files.iter().any(|f| f.path == *p));
            if let Some(path) = clash {
                return Err(Error::PathConflict {
                    path: path.to_owned(),
                });
            }
        }
        let list = child_array(storage, "files");
        for f in &files {
            list.retain(|n| n.get("path").and_then(Value::as_str) != Some(&f.path));
            list.push(file_node(spec, f));
        }
    }
    if !custom.units.is_empty() {
        let list = child_array(child(root, "systemd"), "units");
        for u in &custom.units {
            list.retain(|n| n.get("name").and_then(Value::as_str) != Some(&u.name));
            list.push(unit_node(u));
        }
    }
    if !custom.ssh_authorized_keys.is_empty() {
        let users = child_array(child(root, "passwd"), "users");
        let core = match users
            .iter()
            .position(|u| u.get("name").and_then(Value::as_str) == Some("core"))
        {
            Some(i) => &mut users[i],
            None => {
                users.push(json!({ "name": "core" }));
                users.last_mut().expect("just pushed")
            }
        };
        let core = core.as_object_mut().expect("validated users are objects");
        let keys = child_array(core, "sshAuthorizedKeys");
        for k in &custom.ssh_authorized_keys {
            let k = Value::String(k.trim().to_owned());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let config = Config::from_value(value)?;
    Ok(Rendered {
        spec,
        sha512: sha512_hex(config.bytes()),
        bytes: config.bytes().clone(),
    })
}

/// `map[key]` as an object, created (or replacing a `null`) when absent.
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

/// `map[key]` as an array, created (or replacing a `null`) when absent.
fn child_array<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = map.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("just made an array")
}

fn file_node(spec: Spec, f: &File) -> Value {
    let mut node = json!({
        "path": f.path,
        "mode": f.mode.unwrap_or(0o644),
        "overwrite": true,
        "contents": { "source": data_url(&f.contents) },
    });
    if spec.is_v2() {
        node["filesystem"] = json!("root");
    }
    node
}

fn unit_node(u: &Unit) -> Value {
    let mut node = json!({ "name": u.name });
    if let Some(c) = &u.contents {
        node["contents"] = json!(c);
    }
    if let Some(e) = u.enabled {
        node["enabled"] = json!(e);
    }
    if let Some(m) = u.mask {
        node["mask"] = json!(m);
    }
    if !u.dropins.is_empty() {
        node["dropins"] = u
            .dropins
            .iter()
            .map(|d| json!({ "name": d.name, "contents": d.contents }))
            .collect();
    }
    node
}

/// Characters left as-is in a `data:` URL: RFC 3986 unreserved characters, as Butane does.
const DATA_URL_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// A `data:` URL: percent-encoded when the contents are UTF-8 text, base64 otherwise.
pub(crate) fn data_url(contents: &[u8]) -> String {
    match std::str::from_utf8(contents) {
        Ok(text) => format!("data:,{}", utf8_percent_encode(text, DATA_URL_SAFE)),
        Err(_) => {
            use base64::Engine as _;
            format!(
                "data:;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(contents)
            )
        }
    }
}

fn check_path(field: &str, path: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::Customization {
            field: field.to_owned(),
            reason,
        })
    };
    if !path.starts_with('/') || path.len() < 2 {
        return bad("path must be absolute and not /");
    }
    if path.ends_with('/') || path.contains("//") {
        return bad("path must name a file");
    }
    if path.split('/').any(|c| c == "." || c == "..") {
        return bad("path must not contain . or ..");
    }
    if path.chars().any(char::is_control) {
        return bad("path must not contain control characters");
    }
    Ok(())
}

/// A name used as a single path component (keyfile stem, drop-in, interface).
fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(Error::Customization {
            field: field.to_owned(),
            reason: "expected a non-empty file name without '/' or a leading '.'",
        })
    }
}

fn check_unit_name(field: &str, name: &str) -> Result<()> {
    check_name(field, name)?;
    if name.contains('.') {
        Ok(())
    } else {
        Err(Error::Customization {
            field: field.to_owned(),
            reason: "a unit name needs a type suffix such as .service",
        })
    }
}

fn check_hostname(h: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.len() <= 253 && h.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(Error::Customization {
            field: "hostname".to_owned(),
            reason: "expected dot-separated labels of letters, digits and '-' (at most 63 each)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(data_url(b"example file\n"), "data:,example%20file%0A");
        assert_eq!(data_url(b"/a-b_c.d~"), "data:,/a-b_c.d~");
        assert_eq!(data_url(&[0xff, 0x00]), "data:;base64,/wA=");
    }

    #[test]
    fn hostnames() {
        for ok in ["a", "node-1", "master-0.example.com", &"a".repeat(63)] {
            assert!(check_hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", &"a".repeat(64), "é"] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        for ok in ["/etc/x", "/a/b.c"] {
            assert!(check_path("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/", "etc/x", "/a/../b", "/a/./b", "/a//b", "/a/", "/a\nb",
        ] {
            assert!(check_path("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn static_keyfile() {
        let k = Keyfile::static_ipv4(&StaticIpv4 {
            interface: "eno1".into(),
            address: Ipv4Addr::new(192, 168, 126, 10),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(192, 168, 126, 1)),
            dns: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 126, 1))],
        })
        .unwrap();
        assert_eq!(
            k.path(),
            "/etc/NetworkManager/system-connections/eno1.nmconnection"
        );
        assert!(
            k.contents
                .contains("address1=192.168.126.10/24,192.168.126.1\n")
        );
        assert!(k.contents.contains("dns=192.168.126.1;\n"));
    }
}
