//! A parsed, validated Ignition config that keeps its exact bytes.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use crate::error::{Error, Result};
use crate::schema;

/// The Ignition spec versions this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Spec {
    /// 2.2.0: OpenShift 4.1 to 4.5 (`config.append`, `filesystem: "root"`, sha512 only).
    V2_2,
    /// 3.0.0.
    V3_0,
    /// 3.1.0: OpenShift 4.6 (adds sha256 hashes, `httpHeaders`, `proxy`).
    V3_1,
    /// 3.2.0 (adds LUKS, `shouldExist` for users and groups).
    V3_2,
    /// 3.3.0 (adds `kernelArguments`).
    V3_3,
    /// 3.4.0.
    V3_4,
    /// 3.5.0.
    V3_5,
}

impl Spec {
    /// Every supported version, oldest first.
    pub const ALL: [Spec; 7] = [
        Spec::V2_2,
        Spec::V3_0,
        Spec::V3_1,
        Spec::V3_2,
        Spec::V3_3,
        Spec::V3_4,
        Spec::V3_5,
    ];

    /// The version for an `ignition.version` string such as `"3.2.0"`.
    pub fn from_version(version: &str) -> Option<Spec> {
        Spec::ALL.into_iter().find(|s| s.as_str() == version)
    }

    /// The `ignition.version` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Spec::V2_2 => "2.2.0",
            Spec::V3_0 => "3.0.0",
            Spec::V3_1 => "3.1.0",
            Spec::V3_2 => "3.2.0",
            Spec::V3_3 => "3.3.0",
            Spec::V3_4 => "3.4.0",
            Spec::V3_5 => "3.5.0",
        }
    }

    /// Whether this is the 2.x layout (`filesystem` on files, `append`, `networkd`).
    pub fn is_v2(self) -> bool {
        self == Spec::V2_2
    }

    /// The key under `ignition.config` that lists configs to combine: `append` or `merge`.
    pub fn combine_key(self) -> &'static str {
        if self.is_v2() { "append" } else { "merge" }
    }

    /// Whether `sha256-` verification hashes are allowed (3.1 and later).
    pub fn allows_sha256(self) -> bool {
        self >= Spec::V3_1
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recoverable oddity found while loading a config; the config is still served.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A key the config's spec version does not define: Ignition ignores it and warns
    /// ("Unused key"), at any depth.
    UnknownKey {
        /// JSON pointer of the key.
        pointer: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey { pointer } => write!(f, "unknown key at {pointer}"),
        }
    }
}

/// A config that another config pulls in (`ignition.config.append` / `merge` / `replace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRef {
    /// The URL.
    pub source: String,
    /// The verification hash (`sha512-<hex>`), when pinned.
    pub hash: Option<String>,
}

/// A validated Ignition config: its spec version, its exact bytes and their sha512.
///
/// The bytes are kept as loaded so that serving a role config returns exactly what was hashed;
/// the parsed JSON is kept as a [`serde_json::Value`] so unknown fields survive customization.
/// `Debug` prints the version, size and hash only: configs hold secrets.
#[derive(Clone)]
pub struct Config {
    spec: Spec,
    bytes: Bytes,
    value: Value,
    sha512: String,
    warnings: Vec<Warning>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("spec", &self.spec)
            .field("len", &self.bytes.len())
            .field("sha512", &self.sha512)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Parse and validate a config from its bytes.
    pub fn parse(bytes: impl Into<Bytes>) -> Result<Config> {
        Config::parse_named("<memory>", bytes)
    }

    /// Like [`Config::parse`], naming the source (a file or role) in errors.
    pub fn parse_named(origin: &str, bytes: impl Into<Bytes>) -> Result<Config> {
        let bytes = bytes.into();
        let value: Value = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            origin: origin.to_owned(),
            source,
        })?;
        let (spec, warnings) = validate(origin, &value)?;
        let sha512 = sha512_hex(&bytes);
        Ok(Config {
            spec,
            bytes,
            value,
            sha512,
            warnings,
        })
    }

    /// Validate a JSON value and serialize it compactly (keys sorted).
    pub fn from_value(value: Value) -> Result<Config> {
        let (spec, warnings) = validate("<generated>", &value)?;
        let bytes = Bytes::from(serde_json::to_vec(&value).map_err(|source| Error::Json {
            origin: "<generated>".to_owned(),
            source,
        })?);
        let sha512 = sha512_hex(&bytes);
        Ok(Config {
            spec,
            bytes,
            value,
            sha512,
            warnings,
        })
    }

    /// The spec version.
    pub fn spec(&self) -> Spec {
        self.spec
    }

    /// The exact bytes, as loaded.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The parsed JSON.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The sha512 of [`Config::bytes`], lowercase hex.
    pub fn sha512(&self) -> &str {
        &self.sha512
    }

    /// The hash in Ignition's verification form, `sha512-<hex>`.
    pub fn verification_hash(&self) -> String {
        format!("sha512-{}", self.sha512)
    }

    /// Recoverable oddities found while loading.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The configs this one appends or merges (OpenShift's `master.ign` points at the machine
    /// config server this way).
    pub fn config_refs(&self) -> Vec<ConfigRef> {
        let list = self
            .value
            .pointer(&format!("/ignition/config/{}", self.spec.combine_key()))
            .and_then(Value::as_array);
        list.into_iter()
            .flatten()
            .filter_map(|r| {
                Some(ConfigRef {
                    source: r.get("source")?.as_str()?.to_owned(),
                    hash: r
                        .pointer("/verification/hash")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            })
            .collect()
    }

    /// The paths of `storage.files`.
    pub fn file_paths(&self) -> Vec<&str> {
        entries(&self.value, "/storage/files", "path")
    }

    /// The names of `systemd.units`.
    pub fn unit_names(&self) -> Vec<&str> {
        entries(&self.value, "/systemd/units", "name")
    }

    /// The names of `passwd.users`.
    pub fn user_names(&self) -> Vec<&str> {
        entries(&self.value, "/passwd/users", "name")
    }
}

fn entries<'a>(value: &'a Value, pointer: &str, key: &str) -> Vec<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get(key)?.as_str())
        .collect()
}

/// The sha512 of some bytes, lowercase hex.
pub(crate) fn sha512_hex(bytes: &[u8]) -> String {
    hex::encode(Sha512::digest(bytes))
}

/// Check a config's structure: the version, and the parts this crate reads or modifies.
///
/// This is not the full JSON schema (the tests check emitted configs against that); it rejects
/// what Ignition itself would reject in the parts we touch, and is tolerant of the `{}` and
/// `null` Go writes for empty optional fields.
fn validate(origin: &str, value: &Value) -> Result<(Spec, Vec<Warning>)> {
    let v = Validator {
        origin,
        warnings: Vec::new(),
    };
    v.run(value)
}

struct Validator<'a> {
    origin: &'a str,
    warnings: Vec<Warning>,
}

impl Validator<'_> {
    fn invalid(&self, pointer: impl Into<String>, reason: &'static str) -> Error {
        Error::Invalid {
            origin: self.origin.to_owned(),
            pointer: pointer.into(),
            reason,
        }
    }

    fn duplicate(&self, pointer: String, key: &str) -> Error {
        Error::Duplicate {
            origin: self.origin.to_owned(),
            pointer,
            key: key.to_owned(),
        }
    }

    fn object<'v>(&self, v: &'v Value, pointer: &str) -> Result<Option<&'v Map<String, Value>>> {
        match v {
            Value::Null => Ok(None),
            Value::Object(m) => Ok(Some(m)),
            _ => Err(self.invalid(pointer, "expected an object")),
        }
    }

    fn array<'v>(&self, v: Option<&'v Value>, pointer: &str) -> Result<&'v [Value]> {
        match v {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.invalid(pointer, "expected an array")),
        }
    }

    fn opt_str<'v>(
        &self,
        m: &'v Map<String, Value>,
        key: &str,
        ptr: &str,
    ) -> Result<Option<&'v str>> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(format!("{ptr}/{key}"), "expected a string")),
        }
    }

    fn run(mut self, value: &Value) -> Result<(Spec, Vec<Warning>)> {
        let Value::Object(root) = value else {
            return Err(self.invalid("", "expected an object"));
        };
        let version = root
            .get("ignition")
            .and_then(|i| i.get("version"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::MissingVersion {
                origin: self.origin.to_owned(),
            })?;
        let spec = Spec::from_version(version).ok_or_else(|| Error::UnsupportedVersion {
            origin: self.origin.to_owned(),
            version: version.to_owned(),
        })?;
        schema::walk(value, schema::root(spec), &mut self.warnings)
            .map_err(|m| self.invalid(m.pointer, m.reason))?;
        self.ignition(spec, &root["ignition"])?;
        if let Some(storage) = root.get("storage") {
            self.storage(spec, storage)?;
        }
        if let Some(systemd) = root.get("systemd") {
            self.units(spec, systemd)?;
        }
        if let Some(passwd) = root.get("passwd") {
            self.passwd(spec, passwd)?;
        }
        Ok((spec, self.warnings))
    }

    fn ignition(&mut self, spec: Spec, v: &Value) -> Result<()> {
        let Some(ign) = self.object(v, "/ignition")? else {
            return Ok(());
        };
        if let Some(cfg) = ign.get("config")
            && let Some(cfg) = self.object(cfg, "/ignition/config")?
        {
            let (wrong, msg) = if spec.is_v2() {
                (
                    "merge",
                    "config.merge is spec 3.x; spec 2.2 uses config.append",
                )
            } else {
                (
                    "append",
                    "config.append is spec 2.x; spec 3.x uses config.merge",
                )
            };
            if cfg.get(wrong).is_some_and(|v| !v.is_null()) {
                return Err(self.invalid(format!("/ignition/config/{wrong}"), msg));
            }
            let key = spec.combine_key();
            let ptr = format!("/ignition/config/{key}");
            for (i, r) in self.array(cfg.get(key), &ptr)?.iter().enumerate() {
                self.resource(spec, r, &format!("{ptr}/{i}"), true)?;
            }
            if let Some(r) = cfg.get("replace") {
                self.resource(spec, r, "/ignition/config/replace", false)?;
            }
        }
        if let Some(sec) = ign.get("security")
            && let Some(sec) = self.object(sec, "/ignition/security")?
            && let Some(tls) = sec.get("tls")
            && let Some(tls) = self.object(tls, "/ignition/security/tls")?
        {
            let ptr = "/ignition/security/tls/certificateAuthorities";
            for (i, r) in self
                .array(tls.get("certificateAuthorities"), ptr)?
                .iter()
                .enumerate()
            {
                self.resource(spec, r, &format!("{ptr}/{i}"), true)?;
            }
        }
        Ok(())
    }

    /// A config or CA reference (`required`: the source must be set) or file contents.
    fn resource(&self, spec: Spec, v: &Value, ptr: &str, required: bool) -> Result<()> {
        let Some(m) = self.object(v, ptr)? else {
            return Ok(());
        };
        let source = self.opt_str(m, "source", ptr)?;
        if required && source.is_none_or(str::is_empty) {
            return Err(self.invalid(format!("{ptr}/source"), "source is required"));
        }
        if let Some(ver) = m.get("verification")
            && let Some(ver) = self.object(ver, &format!("{ptr}/verification"))?
            && let Some(hash) = self.opt_str(ver, "hash", &format!("{ptr}/verification"))?
        {
            let ok = match hash.split_once('-') {
                Some(("sha512", hex)) => is_hex(hex, 128),
                Some(("sha256", hex)) if spec.allows_sha256() => is_hex(hex, 64),
                _ => false,
            };
            if !ok {
                return Err(self.invalid(
                    format!("{ptr}/verification/hash"),
                    if spec.allows_sha256() {
                        "expected sha512-<128 hex> or sha256-<64 hex>"
                    } else {
                        "expected sha512-<128 hex> (the only hash this spec allows)"
                    },
                ));
            }
        }
        Ok(())
    }

    fn storage(&mut self, spec: Spec, v: &Value) -> Result<()> {
        let Some(storage) = self.object(v, "/storage")? else {
            return Ok(());
        };
        let mut seen = BTreeSet::new();
        for kind in ["files", "directories", "links"] {
            let ptr = format!("/storage/{kind}");
            for (i, node) in self.array(storage.get(kind), &ptr)?.iter().enumerate() {
                let ptr = format!("{ptr}/{i}");
                let Some(node) = self.object(node, &ptr)? else {
                    return Err(self.invalid(ptr, "expected an object"));
                };
                let path = self
                    .opt_str(node, "path", &ptr)?
                    .ok_or_else(|| self.invalid(format!("{ptr}/path"), "path is required"))?;
                if !path.starts_with('/') {
                    return Err(self.invalid(format!("{ptr}/path"), "path must be absolute"));
                }
                if spec.is_v2() {
                    if self
                        .opt_str(node, "filesystem", &ptr)?
                        .is_none_or(str::is_empty)
                    {
                        return Err(self.invalid(
                            format!("{ptr}/filesystem"),
                            "spec 2.2 requires a filesystem (usually \"root\")",
                        ));
                    }
                } else if !seen.insert(path) {
                    return Err(self.duplicate(ptr, path));
                }
                match node.get("mode") {
                    None | Some(Value::Null) => {}
                    Some(Value::Number(n)) if n.as_u64().is_some_and(|m| m <= 0o7777) => {}
                    Some(_) => {
                        return Err(self.invalid(
                            format!("{ptr}/mode"),
                            "mode must be a decimal integer up to 4095 (0o7777)",
                        ));
                    }
                }
                if kind == "files"
                    && let Some(c) = node.get("contents")
                {
                    self.resource(spec, c, &format!("{ptr}/contents"), false)?;
                }
                // Ignition 3 refuses to overwrite a file with nothing.
                if kind == "files"
                    && !spec.is_v2()
                    && node.get("overwrite") == Some(&Value::Bool(true))
                    && node
                        .get("contents")
                        .and_then(|c| c.get("source"))
                        .is_none_or(Value::is_null)
                {
                    return Err(self.invalid(
                        format!("{ptr}/overwrite"),
                        "overwrite must be false if contents.source is unset",
                    ));
                }
            }
        }
        Ok(())
    }

    fn units(&mut self, spec: Spec, v: &Value) -> Result<()> {
        let Some(systemd) = self.object(v, "/systemd")? else {
            return Ok(());
        };
        let mut seen = BTreeSet::new();
        for (i, unit) in self
            .array(systemd.get("units"), "/systemd/units")?
            .iter()
            .enumerate()
        {
            let ptr = format!("/systemd/units/{i}");
            let Some(unit) = self.object(unit, &ptr)? else {
                return Err(self.invalid(ptr, "expected an object"));
            };
            let name = self
                .opt_str(unit, "name", &ptr)?
                .filter(|n| !n.is_empty())
                .ok_or_else(|| self.invalid(format!("{ptr}/name"), "unit name is required"))?;
            if !spec.is_v2() && !seen.insert(name) {
                return Err(self.duplicate(ptr, name));
            }
            for key in ["enabled", "mask", "enable"] {
                match unit.get(key) {
                    None | Some(Value::Null) | Some(Value::Bool(_)) => {}
                    Some(_) => {
                        return Err(self.invalid(format!("{ptr}/{key}"), "expected a boolean"));
                    }
                }
            }
            self.opt_str(unit, "contents", &ptr)?;
        }
        Ok(())
    }

    fn passwd(&mut self, spec: Spec, v: &Value) -> Result<()> {
        let Some(passwd) = self.object(v, "/passwd")? else {
            return Ok(());
        };
        let mut seen = BTreeSet::new();
        for (i, user) in self
            .array(passwd.get("users"), "/passwd/users")?
            .iter()
            .enumerate()
        {
            let ptr = format!("/passwd/users/{i}");
            let Some(user) = self.object(user, &ptr)? else {
                return Err(self.invalid(ptr, "expected an object"));
            };
            let name = self
                .opt_str(user, "name", &ptr)?
                .filter(|n| !n.is_empty())
                .ok_or_else(|| self.invalid(format!("{ptr}/name"), "user name is required"))?;
            if !spec.is_v2() && !seen.insert(name) {
                return Err(self.duplicate(ptr, name));
            }
            let keys_ptr = format!("{ptr}/sshAuthorizedKeys");
            for (k, key) in self
                .array(user.get("sshAuthorizedKeys"), &keys_ptr)?
                .iter()
                .enumerate()
            {
                if !key.is_string() {
                    return Err(self.invalid(format!("{keys_ptr}/{k}"), "expected a string"));
                }
            }
        }
        Ok(())
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}
