//! Per-host Ignition configs for bare-metal RHCOS and OpenShift installs: load the role configs
//! `openshift-install create ignition-configs` writes, pick one per machine, customize it for
//! that host, and serve it only to that host.
//!
//! # Key types
//!
//! - [`Config`]: a validated Ignition config of spec 2.2 (OpenShift 4.1 to 4.5) or 3.0 to 3.5,
//!   with its exact bytes and their sha512. As strict as Ignition itself: every value is
//!   checked against its spec version's fields (Ignition's Go structs), so a value of the
//!   wrong JSON type anywhere is an [`Error::Invalid`] with its JSON pointer, and a key the
//!   version does not define (`storage.filez`, `systemd.unit`) is a [`Warning`] with its
//!   pointer ([`Config::warnings`]; [`Store::insert_role`] logs them), as Ignition warns
//!   "Unused key". Invalid JSON, a missing or unknown version, and the semantic checks of the
//!   parts this crate edits (paths, duplicates, modes, hashes) fail at load time. Unknown
//!   fields are kept as they are; the `{}` and `null` Go writes for empty fields are accepted.
//!   One deliberate difference: a key that differs from a field only in case (`PATH`) is
//!   refused, where Go would read it into the field and Ignition would warn.
//! - [`Store`]: role configs by name ([`Store::load_dir`], [`Store::role`]), and [`Group`]s
//!   that map machines ([`Selector`]: MAC, SMBIOS UUID and serial, hostname, role, labels) to a
//!   [`Profile`] (role + [`Customization`] + kernel arguments). The most specific matching
//!   group wins; two equally specific groups that could match the same machine are refused
//!   when added; a group without selectors is the default.
//! - [`Customization`]: hostname (`/etc/hostname`), [`File`]s, systemd [`Unit`]s,
//!   NetworkManager [`Keyfile`]s (mode 0600) and SSH keys for `core`.
//! - [`render_for_host`]: a role config plus a customization, as a [`Mode::Merged`] config of
//!   the same spec version or a small [`Mode::Pointer`] config that appends (2.2) or merges
//!   (3.x) the role config pinned by its sha512. [`Rendered::sha512`] and
//!   [`Config::verification_hash`] give the hashes to pin in kernel arguments.
//! - [`Store::render_for`]: the group and rendered config a machine gets, for pinning its
//!   hash ahead of its request (iPXE kernel arguments) or answering it elsewhere (introspection).
//! - [`Route`]: the `GET /ignition?mac=..` and `GET /ignition/<role>` handler for the
//!   pxe-stack HTTP server, with lease-based or token-based ([`TokenKey`]) [`Access`]; emits
//!   [`pxe_stack::EventKind::Ignition`] events and logs role, MAC and sha512 only.
//!
//! # Example
//!
//! ```
//! use ignition_serve::{Config, Customization, Group, Mode, Profile, Query, Selector, Store, render_for_host};
//!
//! let mut store = Store::new();
//! store.insert_role("worker", Config::parse(r#"{"ignition":{"version":"3.2.0"}}"#)?)?;
//! store.add_group(Group {
//!     id: "worker-0".into(),
//!     selector: Selector { mac: Some("52:54:00:00:00:10".parse()?), ..Default::default() },
//!     profile: Profile {
//!         role: "worker".into(),
//!         customization: Customization { hostname: Some("worker-0".into()), ..Default::default() },
//!         ..Default::default()
//!     },
//! })?;
//!
//! let machine = Query { mac: Some("52-54-00-00-00-10".parse()?), ..Default::default() };
//! let group = store.select(&machine).expect("a group matches");
//! let role = store.role(&group.profile.role).expect("role loaded");
//! let merged = render_for_host(role, &group.profile.customization, &Mode::Merged)?;
//! assert!(std::str::from_utf8(&merged.bytes)?.contains(r#""path":"/etc/hostname""#));
//!
//! let pointer = render_for_host(
//!     role,
//!     &group.profile.customization,
//!     &Mode::Pointer { url: "http://192.168.126.1/ignition/worker".into() },
//! )?;
//! assert!(std::str::from_utf8(&pointer.bytes)?.contains(&role.verification_hash()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Serving: mount a [`Route`] in the HTTP server (it is a `pxe_stack::route::Handler`), or call
//! [`Route::respond`] directly.
//!
//! ```
//! use std::sync::Arc;
//! // Only this crate's names: `Mac`, the lookups, sinks and `route` are re-exported from pxe-stack.
//! use ignition_serve::{Mac, NoLookup, Options, Recorder, Route, Store, route::RouteRequest};
//!
//! let route = Route::new(Store::new(), Arc::new(NoLookup), Arc::new(Recorder::new()), Options::default());
//! let req = RouteRequest {
//!     request: http::Request::get("/ignition?mac=52:54:00:00:00:10").body(bytes::Bytes::new())?,
//!     peer: "192.168.126.10:40000".parse()?,
//!     mac: None::<Mac>,
//! };
//! // No lease lookup: the address cannot be proven to be that host's.
//! assert_eq!(route.respond(&req).status(), http::StatusCode::FORBIDDEN);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Serving rules
//!
//! A request names the machine with `mac`, `uuid`, `serial`, `hostname`, `role` and any other
//! parameters as labels; without `mac`, the MAC holding the source address's lease is used.
//! With [`Access::Lease`] (the default) the config goes only to the address holding that MAC's
//! DHCP lease; with [`Access::Token`] the URL must carry `token=`, an HMAC-SHA256 of the
//! canonical query ([`TokenKey::query_string`] builds the URL's query), compared in constant
//! time. Statuses: 200 (`Cache-Control: no-store`), 503 with `Retry-After` while the store or
//! the role config is not ready (Ignition retries 5xx), 404 when no group matches, 403 when
//! the host may not have it (Ignition gives up on 4xx), 400 for a bad query.
//!
//! # Design notes
//!
//! Configs are kept as [`serde_json::Value`], checked by a typed walk over per-version field
//! tables (generated by `scripts/gen-ignition-schema.py` from Ignition's JSON schemas, which
//! generate Ignition's Go structs), rather than the `ignition-config` crate's typed structs:
//! that crate covers spec 3.x only (OpenShift 4.1 to 4.5 use 2.2), a value round-trips unknown
//! fields exactly, and the walk collects unknown keys as warnings where serde would either
//! drop or refuse them. The tests hold a corpus of good, warned and bad configs
//! (`tests/fixtures/strictness`) whose verdicts and warned paths must equal
//! `ignition-validate`'s. Output
//! keys are sorted, so rendering is deterministic. The tests check every emitted config against
//! the upstream JSON schema of its version and, for 3.0 to 3.3, with `ignition-validate`, and
//! run Ignition's own fetch stage against the route.
//!
//! # Shared vocabulary
//!
//! [`Mac`], [`ParseMacError`], [`HostLookup`], [`NoLookup`], [`EventSink`], [`Recorder`],
//! [`Event`], [`EventKind`] and the [`route`] contract are pxe-stack's, re-exported here so a
//! consumer does not need pxe-stack as a direct dependency to use this crate's API.
//!
//! # Feature flags
//!
//! None. The crate depends on pxe-stack without features (only its shared vocabulary: `Mac`,
//! `HostLookup`, events and the route contract), so it pulls no server or runtime.
//!
//! # What it does not do
//!
//! - It does not run an HTTP server: mount [`Route`] in the pxe-stack HTTP server.
//! - It does not run all of Ignition's semantic validation (partition layouts, unit file
//!   syntax, URL schemes, ...): types and keys are checked everywhere, semantics only in the
//!   parts it edits. It does not resolve `merge`/`replace` chains, fetch remote resources, or
//!   translate Butane.
//! - It does not convert between spec versions: output has the role config's version.
//! - It never logs or lists config contents; `Debug` of configs and files shows sizes and
//!   hashes only.

#![warn(missing_docs)]

mod config;
mod customize;
mod error;
mod schema;
#[rustfmt::skip]
#[allow(clippy::all)]
mod schema_tables;
mod serve;
mod store;

pub use config::{Config, ConfigRef, Spec, Warning};
pub use customize::{
    Customization, Dropin, File, KEYFILE_DIR, Keyfile, Mode, Rendered, StaticIpv4, Unit,
    render_for_host,
};
pub use error::{Error, Result};
pub use serve::{Access, Delivery, Options, QueryError, RESERVED_PARAMS, Route, TokenKey};
pub use store::{Group, Metadata, OPENSHIFT_ROLES, Profile, Query, RoleState, Selector, Store};

// pxe-stack's shared vocabulary that this crate's API takes, so a consumer need not depend on
// pxe-stack just to name a MAC, a lease lookup, an event sink or the route contract.
pub use pxe_stack::route;
pub use pxe_stack::{
    Event, EventKind, EventSink, HostLookup, Mac, NoLookup, ParseMacError, Recorder,
};
