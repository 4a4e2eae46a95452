//! The introspection service: state, the post workflow, and the HTTP handler.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use pxe_stack::route::{Handler, HandlerFuture, RouteRequest, reply};
use pxe_stack::{Discard, Event, EventKind, EventSink, HostLookup, Mac, NoLookup};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigAnswer, ConfigSource, HostFacts};
use crate::error::Error;
use crate::identity::{self, LeaseCheck, Warning};
use crate::parse::parse;
use crate::rules::{self, Rules};
use crate::store::{Record, Store, Summary};

/// The default body limit: 2 MiB, ample for ghw JSON of a large server with its PCI list.
pub const DEFAULT_BODY_LIMIT: usize = 2 << 20;

/// How long a host is told to wait when its config is not ready.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Role and disk rules for new hosts.
    pub rules: Rules,
    /// What to do when the sender's lease does not vouch for the body.
    pub lease_check: LeaseCheck,
    /// Bodies larger than this are refused with 413.
    pub body_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules: Rules::default(),
            lease_check: LeaseCheck::default(),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// The result of one successful post.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The host's record as stored.
    pub record: Record,
    /// The config to answer with.
    pub config: ConfigAnswer,
    /// Whether this post created the record (rules ran) rather than found it.
    pub created: bool,
}

/// One line of `GET /inventory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// The primary MAC.
    pub mac: Mac,
    /// Every usable MAC.
    pub macs: Vec<Mac>,
    /// The role.
    pub role: String,
    /// The host's name.
    pub hostname: String,
    /// The install device.
    pub install_dev: String,
    /// A short hardware summary.
    pub summary: Summary,
    /// Latest post, seconds since the Unix epoch.
    pub last_seen: u64,
}

struct Inner {
    settings: Settings,
    source: Box<dyn ConfigSource>,
    store: Box<dyn Store>,
    lookup: Arc<dyn HostLookup>,
    events: Arc<dyn EventSink>,
    records: Mutex<BTreeMap<Mac, Record>>,
}

/// The introspection endpoint: decides roles, keeps the inventory, answers with Ignition.
///
/// Cheap to clone (clones share state): hand one to the HTTP server as a
/// [`route::Handler`](Handler) and keep one to look up install devices for kernel arguments.
#[derive(Clone)]
pub struct Introspector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Introspector`].
pub struct Builder {
    settings: Settings,
    lookup: Arc<dyn HostLookup>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The lease table used to cross-check senders when the server did not name the MAC.
    pub fn lookup(mut self, lookup: Arc<dyn HostLookup>) -> Self {
        self.lookup = lookup;
        self
    }

    /// Where `Introspected` events go.
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Loads the inventory from `store` and builds the service.
    ///
    /// # Errors
    /// Whatever [`Store::load`] returns.
    pub fn build(
        self,
        source: impl ConfigSource + 'static,
        store: impl Store + 'static,
    ) -> Result<Introspector, Error> {
        let records = store.load()?.into_iter().map(|r| (r.mac, r)).collect();
        Ok(Introspector {
            inner: Arc::new(Inner {
                settings: self.settings,
                source: Box::new(source),
                store: Box::new(store),
                lookup: self.lookup,
                events: self.events,
                records: Mutex::new(records),
            }),
        })
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Introspector {
    /// A builder with these settings, no lease table and no event sink.
    pub fn builder(settings: Settings) -> Builder {
        Builder {
            settings,
            lookup: Arc::new(NoLookup),
            events: Arc::new(Discard),
        }
    }

    fn records(&self) -> MutexGuard<'_, BTreeMap<Mac, Record>> {
        // A poisoned lock only means another request panicked mid-way; records are replaced
        // whole, so the map is still consistent.
        let mut records = self
            .inner
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.inner.store.shared() {
            // Other servers decide too: read what they decided. Decisions never change once
            // made, so when the store is unreachable this server's copy still answers for the
            // hosts it knows; new decisions wait for the store (see `Store::decide`).
            match self.inner.store.load() {
                Ok(all) => *records = all.into_iter().map(|r| (r.mac, r)).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "shared inventory store unreachable: answering from decisions already read");
                }
            }
        }
        records
    }

    /// Handles one post: parse, identify, decide (or remember), render, persist, in that order.
    ///
    /// `lease` is the MAC holding `addr`'s DHCP lease, when known. Nothing is stored unless
    /// every step succeeds, and a host seen before keeps its role and disk.
    ///
    /// # Errors
    /// See [`Error::status`] for how each maps to an HTTP status.
    pub fn introspect(
        &self,
        body: &[u8],
        addr: IpAddr,
        lease: Option<Mac>,
        now: SystemTime,
    ) -> Result<Accepted, Error> {
        let limit = self.inner.settings.body_limit;
        if body.len() > limit {
            return Err(Error::TooLarge {
                len: body.len(),
                limit,
            });
        }
        let parsed = parse(body)?;
        let hw = &parsed.hardware;
        let id = identity::identify(hw)?;
        let (primary, warnings) =
            identity::check_lease(self.inner.settings.lease_check, &id, addr, lease)?;
        let summary = Summary {
            cores: rules::cores(hw),
            memory_bytes: rules::memory_bytes(hw),
            disks: hw.block.as_ref().map_or(0, |b| b.disks.len()),
            nics: hw.network.as_ref().map_or(0, |n| n.nics.len()),
            product: hw.product.as_ref().and_then(|p| {
                let parts: Vec<&str> = [p.vendor.as_deref(), p.name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            }),
        };

        // Decisions depend on what is recorded (counts), so decide and record under one lock
        // (and, for a shared store, inside its transaction).
        let mut records = self.records();
        let mut outcome = None;
        let mut decide = |stored: &BTreeMap<Mac, Record>| -> Result<Record, Error> {
            let (record, created) =
                self.decide(stored, &parsed, &id, primary, &warnings, &summary, now)?;
            let facts = HostFacts {
                mac: record.mac,
                macs: record.macs.clone(),
                uuid: record.uuid.clone(),
                serial: record.serial.clone(),
                addr,
                role: record.role.clone(),
                hostname: record.hostname.clone(),
                install_dev: record.install_dev.clone(),
            };
            outcome = Some((self.inner.source.config_for(&facts)?, created));
            Ok(record)
        };
        let record = if self.inner.store.shared() {
            self.inner.store.decide(&mut |stored: &[Record]| {
                let stored = stored.iter().map(|r| (r.mac, r.clone())).collect();
                decide(&stored)
            })?
        } else {
            let record = decide(&records)?;
            self.inner.store.save(&record)?;
            record
        };
        let Some((config, created)) = outcome else {
            return Err(Error::Unavailable {
                message: "the store saved a record without deciding it".into(),
            });
        };
        records.insert(record.mac, record.clone());
        drop(records);
        self.inner.events.emit(Event::now(
            Some(record.mac),
            Some(addr),
            EventKind::Introspected {
                role: record.role.clone(),
                install_dev: Some(record.install_dev.clone()),
            },
        ));
        Ok(Accepted {
            record,
            config,
            created,
        })
    }

    /// The record a post makes: the stored one updated, or a new decision from the rules and
    /// what is stored (role counts, taken hostnames). `Ok((record, created))`.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        records: &BTreeMap<Mac, Record>,
        parsed: &crate::parse::Parsed,
        id: &identity::Identity,
        primary: Mac,
        warnings: &[Warning],
        summary: &Summary,
        now: SystemTime,
    ) -> Result<(Record, bool), Error> {
        let hw = &parsed.hardware;
        let mut warnings = warnings.to_vec();
        let summary = summary.clone();
        let existing = records
            .values()
            .find(|r| id.macs.iter().any(|m| r.macs.contains(m)) || r.mac == primary)
            .or_else(|| {
                let uuid = id.uuid.as_deref()?;
                records.values().find(|r| r.uuid.as_deref() == Some(uuid))
            })
            .cloned();
        let created = existing.is_none();
        let record = match existing {
            Some(mut r) => {
                if r.macs != id.macs {
                    warnings.push(Warning::MacsChanged {
                        before: r.macs.clone(),
                    });
                }
                r.macs = id.macs.clone();
                r.uuid = id.uuid.clone().or(r.uuid);
                r.serial = id.serial.clone().or(r.serial);
                r.summary = summary;
                r.warnings = warnings;
                r.last_seen = unix(now);
                r.posts += 1;
                r.hardware = parsed.raw.clone();
                r
            }
            None => {
                let mut assigned: BTreeMap<String, usize> = BTreeMap::new();
                for r in records.values() {
                    *assigned.entry(r.role.clone()).or_default() += 1;
                }
                let d = rules::decide(&self.inner.settings.rules, hw, id, primary, &assigned)?;
                // The lowest free number, so a deleted record's name is reused, never doubled.
                let taken: std::collections::BTreeSet<&str> =
                    records.values().map(|r| r.hostname.as_str()).collect();
                let hostname = (0..)
                    .map(|n| format!("{}-{n}", d.role))
                    .find(|h| !taken.contains(h.as_str()))
                    .unwrap_or_default();
                Record {
                    mac: primary,
                    macs: id.macs.clone(),
                    uuid: id.uuid.clone(),
                    serial: id.serial.clone(),
                    hostname,
                    role: d.role,
                    reason: d.reason,
                    install_dev: d.disk.device,
                    disk: d.disk.name,
                    disk_bytes: d.disk.size_bytes,
                    sector_size: d.disk.sector_size,
                    summary,
                    warnings,
                    first_seen: unix(now),
                    last_seen: unix(now),
                    posts: 1,
                    hardware: parsed.raw.clone(),
                }
            }
        };
        Ok((record, created))
    }

    /// The body limit from the settings: mount the handler with at least this limit on the
    /// HTTP server, or the server answers 413 first.
    pub fn body_limit(&self) -> usize {
        self.inner.settings.body_limit
    }

    /// The record of the host that lists `mac` among its MACs.
    pub fn record(&self, mac: Mac) -> Option<Record> {
        let records = self.records();
        records
            .get(&mac)
            .or_else(|| records.values().find(|r| r.macs.contains(&mac)))
            .cloned()
    }

    /// The install device decided for the host with `mac`, for `coreos.inst.install_dev`.
    pub fn install_dev(&self, mac: Mac) -> Option<String> {
        self.record(mac).map(|r| r.install_dev)
    }

    /// The logical sector size of the install disk decided for the host with `mac`, when its
    /// inventory reported one.
    pub fn sector_size(&self, mac: Mac) -> Option<u32> {
        self.record(mac).and_then(|r| r.sector_size)
    }

    /// The inventory listing, ordered by primary MAC.
    pub fn list(&self) -> Vec<Listing> {
        self.records()
            .values()
            .map(|r| Listing {
                mac: r.mac,
                macs: r.macs.clone(),
                role: r.role.clone(),
                hostname: r.hostname.clone(),
                install_dev: r.install_dev.clone(),
                summary: r.summary.clone(),
                last_seen: r.last_seen,
            })
            .collect()
    }

    /// Answers one HTTP request; the [`Handler`] impl runs this.
    ///
    /// - `POST` (any path): the introspection body; 200 with the Ignition config.
    /// - `GET .../inventory`: the listing; `GET .../inventory/<mac>`: one full record.
    pub fn respond(&self, req: &RouteRequest) -> Response<Bytes> {
        let method = req.request.method();
        let path = req.request.uri().path().trim_end_matches('/');
        let mut segments = path.rsplit('/');
        let last = segments.next().unwrap_or("");
        let before = segments.next().unwrap_or("");
        match *method {
            Method::POST => self.respond_post(req),
            Method::GET if last == "inventory" => json(&self.list()),
            Method::GET if before == "inventory" => match last.parse::<Mac>() {
                Err(e) => reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
                Ok(mac) => match self.record(mac) {
                    Some(r) => json(&r),
                    None => reply::error(StatusCode::NOT_FOUND, &format!("no host {mac}")),
                },
            },
            Method::GET => reply::error(StatusCode::NOT_FOUND, "not found"),
            _ => {
                let mut resp = reply::error(StatusCode::METHOD_NOT_ALLOWED, "use POST or GET");
                resp.headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static("GET, POST"));
                resp
            }
        }
    }

    fn respond_post(&self, req: &RouteRequest) -> Response<Bytes> {
        let addr = req.peer.ip();
        let lease = req.mac.or_else(|| self.inner.lookup.mac_for(addr));
        match self.introspect(req.request.body(), addr, lease, SystemTime::now()) {
            Ok(out) => {
                tracing::info!(mac = %out.record.mac, role = %out.record.role,
                    install_dev = %out.record.install_dev, created = out.created, "introspected");
                reply::ok("application/json", out.config.body)
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "introspection refused");
                match e {
                    Error::NotReady { .. } => reply::not_ready(RETRY_AFTER, &e.to_string()),
                    Error::NoDisk { ref rejected, .. } => {
                        let mut msg = e.to_string();
                        for r in rejected {
                            msg.push_str(&format!("\n{}: {}", r.disk, r.reason));
                        }
                        reply::error(e.status(), &msg)
                    }
                    _ => reply::error(e.status(), &e.to_string()),
                }
            }
        }
    }
}

fn json<T: Serialize>(value: &T) -> Response<Bytes> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => reply::ok("application/json", body),
        Err(e) => reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The work (including the store's fsync) happens when `handle` is called, before the returned
/// future is polled: posts are rare (one per host install) and small, so they do not get a
/// blocking thread of their own.
impl Handler for Introspector {
    fn handle(&self, req: RouteRequest) -> HandlerFuture<'_> {
        let resp = self.respond(&req);
        Box::pin(async move { resp })
    }
}
