//! The CoreOS introspection endpoint: ghw hardware JSON in, a role and an Ignition config out.
//!
//! With `coreos.inst.introspection_endpoint=URL` the installer POSTs the machine's
//! [ghw](https://github.com/jaypipes/ghw) hardware description and uses the answer body as its
//! Ignition config. This crate turns that post into a decision and keeps an inventory:
//!
//! 1. [`parse`] reads the body into the tolerant [`Hardware`] model: the 2019 client's
//!    concatenated `ghwc {block,cpu,gpu,memory,net,topology} -f json` objects, or one modern
//!    `ghwc -f json` host object. Placeholders (`"unknown"`, `""`, `null`, `-1`) become `None`.
//! 2. [`identify`] finds the host's usable NIC MACs and DMI ids; [`check_lease`] cross-checks
//!    them with the sender's DHCP lease under a [`LeaseCheck`] policy (by default a sender whose
//!    lease belongs to another MAC is refused, since the answer may carry cluster secrets).
//! 3. [`decide`] applies [`Rules`]: an explicit MAC, then ordered rules with predicates and
//!    limits ("the first 3 hosts become masters"), then a default role; and [`choose_disk`]
//!    picks the install disk with Ironic-style [`DiskHints`].
//! 4. [`Introspector`] ties it together: a host seen before keeps its role and disk, a new one
//!    is decided, the role's config comes from a [`ConfigSource`], and the [`Record`] is saved
//!    through a [`Store`] ([`FileStore`] writes atomically) before the answer goes out. It is a
//!    [`pxe_stack::route::Handler`]: `POST` answers with the Ignition config, `GET .../inventory`
//!    lists hosts, `GET .../inventory/<mac>` shows one record with its full hardware JSON.
//!
//! The install disk travels out of band: it is in the record ([`Introspector::install_dev`])
//! for whoever renders the host's `coreos.inst.install_dev` kernel argument, because the
//! installer has already chosen its disk by the time it posts.
//!
//! | failure | status |
//! |---|---|
//! | body over [`Settings::body_limit`] | 413 |
//! | empty or malformed JSON, a field of the wrong shape (named in the message) | 400 |
//! | sender's lease belongs to another MAC, or no lease under [`LeaseCheck::Require`] | 403 |
//! | no usable NIC MAC | 422 |
//! | no rule gives a role, or no disk satisfies the hints (reasons listed) | 409 |
//! | the role's config is not ready | 503 with `Retry-After` |
//! | no config for the role, store failure | 500 |
//!
//! Nothing is recorded unless the whole post succeeds.
//!
//! On `pxe-stack`'s HTTP server (feature `http`), mount one clone for the post and one for the
//! inventory, with the service's body limit:
//!
//! ```text
//! let routes = pxe_stack::http::Routes::new()
//!     .exact_with_limit("/introspection", service.body_limit(), Arc::new(service.clone()))
//!     .prefix("/inventory", service.clone());
//! ```
//!
//! # Example
//! ```
//! use std::time::SystemTime;
//! use rhcos_introspect::{Introspector, MemoryStore, Rules, Settings, StaticConfigs};
//!
//! let settings = Settings { rules: Rules::masters_then_workers(1), ..Settings::default() };
//! let configs = StaticConfigs::new()
//!     .with("master", r#"{"ignition":{"version":"3.2.0"}}"#)
//!     .with("worker", r#"{"ignition":{"version":"3.2.0"},"storage":{}}"#);
//! let service = Introspector::builder(settings).build(configs, MemoryStore::new())?;
//!
//! let body = br#"{"network":{"nics":[{"name":"eno1","mac_address":"52:54:00:00:00:01","is_virtual":false}]},
//!                 "block":{"disks":[{"name":"vda","size_bytes":107374182400,"drive_type":"hdd",
//!                                    "bus_path":"pci-0000:00:04.0"}]}}"#;
//! let addr = "192.0.2.10".parse()?;
//! let out = service.introspect(body, addr, None, SystemTime::now())?;
//! assert_eq!(out.record.role, "master");
//! assert_eq!(out.record.install_dev, "/dev/disk/by-path/pci-0000:00:04.0");
//! assert_eq!(&out.config.body[..], br#"{"ignition":{"version":"3.2.0"}}"#);
//!
//! // The same host posting again keeps its role.
//! let again = service.introspect(body, addr, None, SystemTime::now())?;
//! assert_eq!((again.record.role.as_str(), again.created), ("master", false));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Shared vocabulary
//!
//! [`Mac`], [`ParseMacError`], [`HostLookup`], [`NoLookup`], [`EventSink`], [`Recorder`],
//! [`Event`], [`EventKind`] and the [`route`] contract are pxe-stack's, re-exported here so a
//! consumer does not need pxe-stack as a direct dependency to use this crate's API:
//!
//! ```
//! use rhcos_introspect::{Mac, NoLookup, Recorder, route::Handler};
//!
//! fn mount(_handler: &dyn Handler, _events: &Recorder, _lookup: &NoLookup) {}
//! let mac: Mac = "52:54:00:00:00:01".parse()?;
//! assert_eq!(mac.to_string(), "52:54:00:00:00:01");
//! # Ok::<(), rhcos_introspect::ParseMacError>(())
//! ```
//!
//! # Feature flags
//! - `ignition` (off by default): `IgnitionConfigs`, a [`ConfigSource`] that renders the
//!   decided role's config from an `ignition_serve::Store` (or the live store of an
//!   `ignition_serve::Route`), applying the host's group customization and its hostname.
//!
//! The crate needs no runtime either way: the [`Handler`](pxe_stack::route::Handler) future is
//! ready at once, and [`FileStore`] uses `std::fs`.
//!
//! # What it does not do
//! It does not run an HTTP server (mount the handler on `pxe-stack`'s), render or merge Ignition
//! (a [`ConfigSource`] does), support Ironic's hint operators (`<in>`, `s==`, `>=`), or forget
//! hosts: delete a record file to let a host be decided afresh.

mod config;
mod disk;
mod error;
mod ghw;
mod identity;
#[cfg(feature = "ignition")]
mod ignition;
mod lenient;
mod parse;
mod rules;
mod service;
mod store;

pub use config::{ConfigAnswer, ConfigSource, HostFacts, StaticConfigs};
pub use disk::{Chosen, DEFAULT_MIN_DISK_BYTES, DiskHints, choose as choose_disk};
pub use error::{Error, RejectReason, Rejected};
pub use ghw::{
    Baseboard, Bios, Block, Cache, Chassis, Core, Cpu, Disk, DriveType, Gpu, GpuCard, Hardware,
    Memory, MemoryModule, Network, Nic, NicCapability, Node, Partition, Pci, PciDevice, PciName,
    Processor, Product, StorageController, Topology,
};
pub use identity::{Identity, LeaseCheck, Warning, check_lease, identify};
#[cfg(feature = "ignition")]
pub use ignition::IgnitionConfigs;
pub use parse::{Parsed, parse};
pub use rules::{Decision, Predicate, Reason, Rule, Rules, cores, decide, memory_bytes};
pub use service::{Accepted, Builder, DEFAULT_BODY_LIMIT, Introspector, Listing, Settings};
pub use store::{FileStore, MemoryStore, Record, Store, Summary};

// pxe-stack's shared vocabulary that this crate's API takes, so a consumer need not depend on
// pxe-stack just to name a MAC, a lease lookup, an event sink or the route contract.
pub use pxe_stack::route;
pub use pxe_stack::{
    Event, EventKind, EventSink, HostLookup, Mac, NoLookup, ParseMacError, Recorder,
};
