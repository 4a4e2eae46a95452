//! Role configs, groups and machine matching.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pxe_stack::Mac;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::customize::{Customization, Mode, Rendered, render_for_host};
use crate::error::{Error, Result};

/// What identifies a machine in a request (or what the introspection decided about it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The MAC address of the booting NIC.
    pub mac: Option<Mac>,
    /// The SMBIOS system UUID (compared case-insensitively).
    pub uuid: Option<String>,
    /// The SMBIOS serial number.
    pub serial: Option<String>,
    /// The hostname (compared case-insensitively).
    pub hostname: Option<String>,
    /// A role already decided for the machine (for example by introspection).
    pub role: Option<String>,
    /// Any other labels, matched exactly.
    pub labels: BTreeMap<String, String>,
}

/// The conditions a machine must meet for a group to apply; empty fields match anything.
///
/// A selector with no conditions at all is the default group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// SMBIOS system UUID (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// SMBIOS serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Hostname (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Role already decided for the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Arbitrary labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Selector {
    /// How many conditions the selector has: the more, the more specific.
    pub fn specificity(&self) -> usize {
        usize::from(self.mac.is_some())
            + usize::from(self.uuid.is_some())
            + usize::from(self.serial.is_some())
            + usize::from(self.hostname.is_some())
            + usize::from(self.role.is_some())
            + self.labels.len()
    }

    /// Whether a machine described by `q` meets every condition.
    pub fn matches(&self, q: &Query) -> bool {
        fn field<T: ?Sized>(
            want: Option<&T>,
            got: Option<&T>,
            eq: impl Fn(&T, &T) -> bool,
        ) -> bool {
            match (want, got) {
                (None, _) => true,
                (Some(w), Some(g)) => eq(w, g),
                (Some(_), None) => false,
            }
        }
        field(self.mac.as_ref(), q.mac.as_ref(), |a, b| a == b)
            && field(self.uuid.as_deref(), q.uuid.as_deref(), eq_ci)
            && field(self.serial.as_deref(), q.serial.as_deref(), |a, b| a == b)
            && field(self.hostname.as_deref(), q.hostname.as_deref(), eq_ci)
            && field(self.role.as_deref(), q.role.as_deref(), |a, b| a == b)
            && self.labels.iter().all(|(k, v)| q.labels.get(k) == Some(v))
    }

    /// Whether some machine could meet both selectors' conditions.
    pub fn overlaps(&self, other: &Selector) -> bool {
        fn both<T: ?Sized>(a: Option<&T>, b: Option<&T>, eq: impl Fn(&T, &T) -> bool) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => eq(a, b),
                _ => true,
            }
        }
        both(self.mac.as_ref(), other.mac.as_ref(), |a, b| a == b)
            && both(self.uuid.as_deref(), other.uuid.as_deref(), eq_ci)
            && both(self.serial.as_deref(), other.serial.as_deref(), |a, b| {
                a == b
            })
            && both(self.hostname.as_deref(), other.hostname.as_deref(), eq_ci)
            && both(self.role.as_deref(), other.role.as_deref(), |a, b| a == b)
            && self
                .labels
                .iter()
                .all(|(k, v)| other.labels.get(k).is_none_or(|o| o == v))
    }
}

/// What a matched machine gets: a role config, per-host changes and kernel arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The role config's name (`master`, `worker`, `bootstrap`, or a plain file's stem).
    pub role: String,
    /// Per-host changes.
    #[serde(default)]
    pub customization: Customization,
    /// Extra kernel arguments for the iPXE script (not used by this crate's serving).
    #[serde(default)]
    pub kernel_args: Vec<String>,
}

/// A set of machines (by [`Selector`]) and the [`Profile`] they get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// A unique id, used in errors and logs.
    pub id: String,
    /// Which machines.
    #[serde(default)]
    pub selector: Selector,
    /// What they get.
    pub profile: Profile,
}

/// The `metadata.json` that `openshift-install create ignition-configs` writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `clusterName`.
    pub cluster_name: Option<String>,
    /// `clusterID`.
    pub cluster_id: Option<String>,
    /// `infraID`.
    pub infra_id: Option<String>,
}

/// A role config's state in the [`Store`].
#[derive(Debug, Clone)]
pub enum RoleState {
    /// Declared with [`Store::expect_role`] but not loaded yet: requests get a 503.
    Pending,
    /// Loaded and valid.
    Ready(Arc<Config>),
}

/// Role configs and groups; the pure core of serving.
#[derive(Debug, Clone)]
pub struct Store {
    roles: BTreeMap<String, RoleState>,
    groups: Vec<Group>,
    metadata: Option<Metadata>,
    ready: bool,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            roles: BTreeMap::new(),
            groups: Vec::new(),
            metadata: None,
            ready: true,
        }
    }
}

/// The files `openshift-install create ignition-configs` writes, loaded by [`Store::load_dir`].
pub const OPENSHIFT_ROLES: [&str; 3] = ["bootstrap", "master", "worker"];

impl Store {
    /// An empty store, ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Load every `*.ign` file of a directory (role = file stem) and `metadata.json` if present.
    ///
    /// This is the `openshift-install create ignition-configs` output directory; its `auth/`
    /// subdirectory is not read. Any invalid config fails the whole load.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let mut store = Store::new();
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "ign") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let Some(role) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let role = role.to_owned();
            store.load_role_file(&role, &path)?;
        }
        let meta = dir.join("metadata.json");
        if meta.is_file() {
            let bytes = std::fs::read(&meta).map_err(io(&meta))?;
            store.metadata = Some(parse_metadata(&bytes)?);
        }
        Ok(store)
    }

    /// Load one role config from a file.
    pub fn load_role_file(&mut self, role: &str, path: impl AsRef<Path>) -> Result<&Config> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let origin = path.display().to_string();
        let config = Config::parse_named(&origin, bytes)?;
        self.insert_role(role, config)
    }

    /// Add or replace a role config; its [`Config::warnings`] are logged at warn level.
    pub fn insert_role(&mut self, role: &str, config: Config) -> Result<&Config> {
        check_role(role)?;
        for warning in config.warnings() {
            // Ignition ignores what the warning names and warns the same when it runs.
            tracing::warn!(role, %warning, "ignition role config");
        }
        self.roles
            .insert(role.to_owned(), RoleState::Ready(Arc::new(config)));
        match &self.roles[role] {
            RoleState::Ready(c) => Ok(c),
            RoleState::Pending => unreachable!("just inserted a ready role"),
        }
    }

    /// Declare a role whose config is not loaded yet: requests for it get a 503 until
    /// [`Store::insert_role`]. Does nothing if the role is loaded.
    pub fn expect_role(&mut self, role: &str) -> Result<()> {
        check_role(role)?;
        self.roles
            .entry(role.to_owned())
            .or_insert(RoleState::Pending);
        Ok(())
    }

    /// A loaded role config.
    pub fn role(&self, role: &str) -> Option<&Config> {
        match self.roles.get(role) {
            Some(RoleState::Ready(c)) => Some(c),
            _ => None,
        }
    }

    /// A role config shared, for handing to another thread.
    pub fn role_arc(&self, role: &str) -> Option<Arc<Config>> {
        match self.roles.get(role) {
            Some(RoleState::Ready(c)) => Some(c.clone()),
            _ => None,
        }
    }

    /// Every role name with its state.
    pub fn roles(&self) -> impl Iterator<Item = (&str, &RoleState)> {
        self.roles.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The cluster metadata, if `metadata.json` was loaded.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Mark the whole store ready or not (while not ready every request gets a 503).
    pub fn set_ready(&mut self, ready: bool) {
        self.ready = ready;
    }

    /// Whether the store is marked ready.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Add a group. Fails if its id is taken, its role name is invalid, or another group with
    /// as many selectors could match the same machine (the tie would have no winner).
    pub fn add_group(&mut self, group: Group) -> Result<()> {
        check_role(&group.profile.role)?;
        group.profile.customization.all_files()?;
        if self.groups.iter().any(|g| g.id == group.id) {
            return Err(Error::DuplicateGroup { id: group.id });
        }
        for g in &self.groups {
            if g.selector.specificity() == group.selector.specificity()
                && g.selector.overlaps(&group.selector)
            {
                return Err(Error::AmbiguousGroups {
                    first: g.id.clone(),
                    second: group.id,
                });
            }
        }
        self.groups.push(group);
        Ok(())
    }

    /// Add groups from JSON: an array of [`Group`]s, or `{"groups": [...]}`.
    pub fn add_groups_json(&mut self, bytes: &[u8]) -> Result<()> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Doc {
            List(Vec<Group>),
            Wrapped { groups: Vec<Group> },
        }
        let doc: Doc = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            origin: "groups".to_owned(),
            source,
        })?;
        let groups = match doc {
            Doc::List(g) | Doc::Wrapped { groups: g } => g,
        };
        for g in groups {
            self.add_group(g)?;
        }
        Ok(())
    }

    /// The groups, in the order added.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The most specific group matching `q` (ties cannot happen: [`Store::add_group`] refuses
    /// them).
    pub fn select(&self, q: &Query) -> Option<&Group> {
        self.groups
            .iter()
            .filter(|g| g.selector.matches(q))
            .max_by_key(|g| g.selector.specificity())
    }
}

impl Store {
    /// What the machine `q` gets: its group and its rendered config, or `None` when no group
    /// matches. Fails with [`Error::RoleNotReady`] while the group's role config is not loaded.
    ///
    /// Use it to pin a host's config hash ([`Rendered::sha512`]) ahead of its request.
    pub fn render_for(&self, q: &Query, mode: &Mode) -> Result<Option<(&Group, Rendered)>> {
        let Some(group) = self.select(q) else {
            return Ok(None);
        };
        let role = self
            .role(&group.profile.role)
            .ok_or_else(|| Error::RoleNotReady {
                role: group.profile.role.clone(),
            })?;
        let rendered = render_for_host(role, &group.profile.customization, mode)?;
        Ok(Some((group, rendered)))
    }
}

fn check_role(role: &str) -> Result<()> {
    let ok = !role.is_empty()
        && role.len() <= 128
        && !role.starts_with('.')
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRole {
            role: role.to_owned(),
        })
    }
}

fn parse_metadata(bytes: &[u8]) -> Result<Metadata> {
    let v: Value = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        origin: "metadata.json".to_owned(),
        source,
    })?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(Metadata {
        cluster_name: s("clusterName"),
        cluster_id: s("clusterID"),
        infra_id: s("infraID"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(json: &str) -> Selector {
        serde_json::from_str(json).unwrap()
    }

    fn group(id: &str, selector: &str) -> Group {
        Group {
            id: id.into(),
            selector: sel(selector),
            profile: Profile {
                role: "worker".into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn most_specific_wins_and_ties_are_refused() {
        let mut s = Store::new();
        s.add_group(group("default", "{}")).unwrap();
        s.add_group(group("masters", r#"{"role":"master"}"#))
            .unwrap();
        s.add_group(group(
            "m0",
            r#"{"role":"master","mac":"52:54:00:00:00:01"}"#,
        ))
        .unwrap();
        // Same count as "masters" and can match the same host.
        assert!(matches!(
            s.add_group(group("rack", r#"{"labels":{"rack":"a"}}"#)),
            Err(Error::AmbiguousGroups { .. })
        ));
        // Same count but disjoint from m0.
        s.add_group(group(
            "m1",
            r#"{"role":"master","mac":"52:54:00:00:00:02"}"#,
        ))
        .unwrap();
        assert!(matches!(
            s.add_group(group("m1", r#"{"mac":"52:54:00:00:00:09"}"#)),
            Err(Error::DuplicateGroup { .. })
        ));
        let q = |mac: &str, role: Option<&str>| Query {
            mac: Some(mac.parse().unwrap()),
            role: role.map(str::to_owned),
            ..Default::default()
        };
        let pick = |q: Query| s.select(&q).map(|g| g.id.clone());
        assert_eq!(
            pick(q("52:54:00:00:00:01", Some("master"))).as_deref(),
            Some("m0")
        );
        assert_eq!(
            pick(q("52:54:00:00:00:03", Some("master"))).as_deref(),
            Some("masters")
        );
        assert_eq!(
            pick(q("52:54:00:00:00:01", None)).as_deref(),
            Some("default")
        );
    }

    #[test]
    fn case_insensitive_uuid() {
        let g = sel(r#"{"uuid":"ABCD-1"}"#);
        let q = Query {
            uuid: Some("abcd-1".into()),
            ..Default::default()
        };
        assert!(g.matches(&q));
        assert!(!g.matches(&Query::default()));
    }

    #[test]
    fn role_names() {
        assert!(check_role("master").is_ok());
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(check_role(bad).is_err(), "{bad}");
        }
    }
}
