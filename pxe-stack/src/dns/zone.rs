//! The zone: entries checked once, answers decided per query without I/O.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::Error;
use super::name::{
    absolute, in_zone, parent, reverse_name, reverse_name6, reverse_nibbles, reverse_octets,
};
use crate::{HostLookup, Mac};

/// The server's configuration: plain data, checked by [`Zone::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The forward zone the server is authoritative for, such as `ocp.example.com`.
    pub origin: String,
    /// The subnets (network, prefix length) whose reverse names the server answers, and the
    /// only clients it forwards for.
    pub subnets: Vec<(Ipv4Addr, u8)>,
    /// The IPv6 subnets (prefix, length) whose `ip6.arpa` names the server answers (from the
    /// hosts' DHCPv6 leases and v6 reservations), and whose clients it forwards for.
    pub subnets6: Vec<(Ipv6Addr, u8)>,
    /// The zone's records.
    pub entries: Vec<Entry>,
    /// Where names outside the zones go, for clients inside `subnets`; none: refused.
    pub upstream: Vec<SocketAddr>,
    /// The TTL of every answer, short because lease-backed records change.
    pub ttl: u32,
    /// Forwarded queries in flight at most; more get SERVFAIL at once, which bounds memory.
    pub max_forwards: usize,
    /// How long one upstream gets to answer before the next is asked, in milliseconds.
    pub forward_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            origin: String::new(),
            subnets: Vec::new(),
            subnets6: Vec::new(),
            entries: Vec::new(),
            upstream: Vec::new(),
            ttl: 30,
            max_forwards: 256,
            forward_timeout_ms: 2000,
        }
    }
}

/// One record of the zone, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The owner, relative to the origin unless it ends in `.` (see [`absolute`]).
    pub name: String,
    /// The data.
    pub value: Value,
}

impl Entry {
    /// An entry for `name` (relative to the origin).
    pub fn new(name: impl Into<String>, value: Value) -> Self {
        Entry {
            name: name.into(),
            value,
        }
    }
}

/// A host's address: its reservation, else whatever the lease table says it holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAddr {
    /// The host.
    pub mac: Mac,
    /// Its reserved address, if it has one.
    pub reserved: Option<Ipv4Addr>,
    /// Its reserved IPv6 address (a DHCPv6 reservation), if it has one.
    #[serde(default)]
    pub reserved6: Option<Ipv6Addr>,
}

impl HostAddr {
    fn resolve(&self, lookup: &dyn HostLookup) -> Option<Ipv4Addr> {
        self.reserved.or_else(|| match lookup.addr_for(self.mac) {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        })
    }

    /// The AAAA data: the v6 reservation, else the host's DHCPv6 lease now.
    fn resolve6(&self, lookup: &dyn HostLookup) -> Option<Ipv6Addr> {
        self.reserved6.or_else(|| lookup.addr6_for(self.mac))
    }
}

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Value {
    /// An address.
    A(Ipv4Addr),
    /// An address that follows a host (the API name pointing at a master without reservation).
    HostA(HostAddr),
    /// A host's own name: its address, and the PTR record for that address back to the name.
    Host(HostAddr),
    /// An alias, absolute or relative to the origin; alone at its name.
    Cname(String),
    /// A service location.
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// The share among equal priorities.
        weight: u16,
        /// The port.
        port: u16,
        /// The host name, absolute or relative to the origin.
        target: String,
    },
    /// A text record (at most 255 bytes).
    Txt(String),
    /// A reverse record; the entry's name must be the reverse name of an address inside
    /// [`Config::subnets`], and the value a name (absolute or relative to the origin).
    Ptr(String),
}

impl Value {
    /// Reads record data as a plan writes it: `kind` is `A`, `CNAME`, `SRV` (`priority weight
    /// port target`), `TXT` or `PTR` (any case).
    pub fn parse(kind: &str, text: &str) -> Result<Value, Error> {
        let bad = |reason: &'static str| Error::Value {
            kind: kind.to_owned(),
            value: text.to_owned(),
            reason,
        };
        Ok(match kind.to_ascii_uppercase().as_str() {
            "A" => Value::A(text.parse().map_err(|_| bad("is not an IPv4 address"))?),
            "CNAME" => Value::Cname(text.to_owned()),
            "TXT" => Value::Txt(text.to_owned()),
            "PTR" => Value::Ptr(text.to_owned()),
            "SRV" => {
                let fields: Vec<&str> = text.split_whitespace().collect();
                let [priority, weight, port, target] = fields[..] else {
                    return Err(bad("is not `priority weight port target`"));
                };
                let number = |s: &str| {
                    s.parse::<u16>()
                        .map_err(|_| bad("has a number out of range"))
                };
                Value::Srv {
                    priority: number(priority)?,
                    weight: number(weight)?,
                    port: number(port)?,
                    target: target.to_owned(),
                }
            }
            _ => return Err(bad("is not one of A, CNAME, SRV, TXT, PTR")),
        })
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::A(_) | Value::HostA(_) => "A",
            Value::Host(_) => "host",
            Value::Cname(_) => "CNAME",
            Value::Srv { .. } => "SRV",
            Value::Txt(_) => "TXT",
            Value::Ptr(_) => "PTR",
        }
    }
}

/// A query type, as far as the zone tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qtype {
    /// IPv4 address.
    A,
    /// Name servers.
    Ns,
    /// Alias.
    Cname,
    /// Start of authority.
    Soa,
    /// Reverse.
    Ptr,
    /// Text.
    Txt,
    /// IPv6 address (hosts' DHCPv6 reservations and leases).
    Aaaa,
    /// Service.
    Srv,
    /// Everything at the name.
    Any,
    /// Any other type (no data in this zone).
    Other(u16),
}

impl From<u16> for Qtype {
    fn from(code: u16) -> Self {
        match code {
            1 => Qtype::A,
            2 => Qtype::Ns,
            5 => Qtype::Cname,
            6 => Qtype::Soa,
            12 => Qtype::Ptr,
            16 => Qtype::Txt,
            28 => Qtype::Aaaa,
            33 => Qtype::Srv,
            255 => Qtype::Any,
            other => Qtype::Other(other),
        }
    }
}

/// Record data in an answer, every name absolute and lowercase without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    /// An address.
    A(Ipv4Addr),
    /// An IPv6 address (a host's DHCPv6 reservation or lease).
    Aaaa(Ipv6Addr),
    /// An alias.
    Cname(String),
    /// A service location.
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: String,
    },
    /// Text.
    Txt(String),
    /// A reverse record.
    Ptr(String),
    /// The zone's start of authority.
    Soa {
        /// The primary server's name (the zone apex).
        mname: String,
        /// The responsible mailbox (`hostmaster.<zone>`).
        rname: String,
        /// The serial.
        serial: u32,
        /// The negative-caching TTL.
        minimum: u32,
    },
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The owner.
    pub name: String,
    /// Its TTL in seconds.
    pub ttl: u32,
    /// The data.
    pub data: Rdata,
}

/// The response code of an authoritative answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// The name exists (the answer may still be empty: no data of that type).
    NoError,
    /// The name does not exist.
    NxDomain,
}

/// What the zone says to one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An authoritative answer.
    Answer {
        /// NOERROR or NXDOMAIN.
        rcode: Rcode,
        /// The answer section.
        records: Vec<Resolved>,
        /// The zone's SOA for the authority section of a negative answer.
        soa: Option<Resolved>,
    },
    /// Not ours; the client may use our upstream resolvers.
    Forward,
    /// Not ours, and the client may not use us as a resolver (or there is none).
    Refuse,
}

/// The checked zone: what [`Zone::answer`] decides with.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: String,
    subnets: Vec<(u32, u32)>,
    /// The IPv6 subnets, as (network, mask).
    subnets6: Vec<(u128, u128)>,
    nodes: HashMap<String, Vec<Value>>,
    /// Names that exist only because something below them does (`_tcp.<zone>`).
    between: HashSet<String>,
    /// Fixed reverse records by address.
    ptr: HashMap<Ipv4Addr, String>,
    /// Reverse records of the hosts' IPv6 reservations.
    ptr6: HashMap<Ipv6Addr, String>,
    /// Host names by MAC, for leased addresses.
    hosts: HashMap<Mac, String>,
    ttl: u32,
    forwarding: bool,
}

/// The reverse zone of a subnet, cut at the octet boundary at or above its prefix, and how
/// many octets that zone's names have.
fn reverse_apex(net: u32, mask: u32) -> (String, usize) {
    let zone_octets = (mask.count_ones() as usize / 8).max(1);
    let apex = reverse_name(Ipv4Addr::from(net))
        .split('.')
        .skip(4 - zone_octets)
        .collect::<Vec<_>>()
        .join(".");
    (apex, zone_octets)
}

/// The `ip6.arpa` zone of an IPv6 subnet, cut at the nibble boundary at or above its prefix,
/// and how many nibbles that zone's names have.
fn reverse_apex6(net: u128, mask: u128) -> (String, usize) {
    let zone_nibbles = (mask.count_ones() as usize / 4).max(1);
    let name = reverse_name6(Ipv6Addr::from(net));
    let apex = name
        .split('.')
        .skip(32 - zone_nibbles)
        .collect::<Vec<_>>()
        .join(".");
    (apex, zone_nibbles)
}

/// What a name inside a reverse zone stands for.
enum ReverseName {
    /// A name between the zone's apex and the addresses: it exists, without data of its own
    /// (the apex has the SOA).
    Between,
    /// An address outside the subnet, or one no host holds.
    Nobody,
    /// An address and its host name.
    Host(String),
}

/// How many CNAMEs inside the zone an answer follows.
const MAX_CHAIN: usize = 8;

impl Zone {
    /// Checks `config` and indexes its entries.
    ///
    /// Refuses a bad origin or subnet, an entry whose name or value is not a name, an entry
    /// outside the zones, and names that collide: a CNAME beside other data, a host name
    /// beside anything else, the same record twice, or one address with two reverse names.
    /// Entry errors carry the entry's index.
    pub fn new(config: &Config) -> Result<Zone, Error> {
        let origin = absolute(&config.origin, "").map_err(|e| Error::Origin {
            reason: e.to_string(),
        })?;
        if origin.starts_with("*.") || reverse_octets(&origin).is_some() {
            return Err(Error::Origin {
                reason: "is a wildcard or reverse name".into(),
            });
        }
        let mut subnets = Vec::new();
        for &(network, prefix) in &config.subnets {
            if prefix == 0 || prefix > 32 {
                return Err(Error::Subnet { network, prefix });
            }
            let mask = u32::MAX << (32 - u32::from(prefix));
            subnets.push((u32::from(network) & mask, mask));
        }
        let mut subnets6 = Vec::new();
        for &(network, prefix) in &config.subnets6 {
            if prefix == 0 || prefix > 128 {
                return Err(Error::Subnet6 { network, prefix });
            }
            let mask = u128::MAX << (128 - u32::from(prefix));
            subnets6.push((u128::from(network) & mask, mask));
        }
        let mut zone = Zone {
            origin,
            subnets,
            subnets6,
            nodes: HashMap::new(),
            between: HashSet::new(),
            ptr: HashMap::new(),
            ptr6: HashMap::new(),
            hosts: HashMap::new(),
            ttl: config.ttl,
            forwarding: !config.upstream.is_empty(),
        };
        for (index, entry) in config.entries.iter().enumerate() {
            zone.add(entry).map_err(|(field, reason)| Error::Entry {
                index,
                field,
                name: entry.name.clone(),
                reason,
            })?;
        }
        for name in zone.nodes.keys() {
            let mut up = parent(name);
            while let Some(p) = up.filter(|p| in_zone(p, &zone.origin) && *p != zone.origin) {
                zone.between.insert(p.to_owned());
                up = parent(p);
            }
        }
        Ok(zone)
    }

    fn add(&mut self, entry: &Entry) -> Result<(), (&'static str, String)> {
        let name = absolute(&entry.name, &self.origin).map_err(|e| ("name", e.to_string()))?;
        let mut value = entry.value.clone();
        let names = |n: &str| absolute(n, &self.origin).map_err(|e| ("value", e.to_string()));
        match &mut value {
            Value::Cname(t) | Value::Ptr(t) => *t = names(t)?,
            Value::Srv { target, .. } => *target = names(target)?,
            Value::Txt(t) if t.len() > 255 => {
                return Err(("value", "is longer than 255 bytes".into()));
            }
            _ => {}
        }
        if let Value::Ptr(target) = &value {
            let addr = match reverse_octets(&name).as_deref() {
                Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
                _ => {
                    return Err((
                        "name",
                        format!("{name} is not the reverse name of an address"),
                    ));
                }
            };
            if !self.in_subnets(addr) {
                return Err(("name", format!("{addr} is outside the served subnets")));
            }
            if self.ptr.insert(addr, target.clone()).is_some() {
                return Err(("name", format!("{addr} has a reverse name already")));
            }
            return Ok(());
        }
        if !in_zone(&name, &self.origin) {
            return Err((
                "name",
                format!("{name} is outside the zone {}", self.origin),
            ));
        }
        if let Value::Host(h) = &value {
            if name.starts_with("*.") {
                return Err(("name", "a host name cannot be a wildcard".into()));
            }
            if self.hosts.insert(h.mac, name.clone()).is_some() {
                return Err(("value", format!("host {} has a name already", h.mac)));
            }
            if let Some(addr) = h.reserved
                && self.in_subnets(addr)
                && self.ptr.insert(addr, name.clone()).is_some()
            {
                return Err(("value", format!("{addr} has a reverse name already")));
            }
            if let Some(addr) = h.reserved6
                && self.in_subnets6(addr)
                && self.ptr6.insert(addr, name.clone()).is_some()
            {
                return Err(("value", format!("{addr} has a reverse name already")));
            }
        }
        if matches!(value, Value::Cname(_)) && name == self.origin {
            return Err(("name", "the zone apex cannot be an alias".into()));
        }
        let here = self.nodes.entry(name.clone()).or_default();
        let alone = |v: &Value| matches!(v, Value::Cname(_) | Value::Host(_));
        if let Some(other) = here.first()
            && (alone(&value) || alone(other))
        {
            return Err((
                "name",
                format!(
                    "{name} has a {} record already; a {} must be alone",
                    other.kind(),
                    value.kind()
                ),
            ));
        }
        if here.contains(&value) {
            return Err((
                "name",
                format!("{name} has this {} record already", value.kind()),
            ));
        }
        here.push(value);
        Ok(())
    }

    fn in_subnets(&self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        self.subnets.iter().any(|&(net, mask)| a & mask == net)
    }

    fn in_subnets6(&self, addr: Ipv6Addr) -> bool {
        let a = u128::from(addr);
        self.subnets6.iter().any(|&(net, mask)| a & mask == net)
    }

    /// The forward zone's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every name an answer can carry apart from the query name itself: owners, targets,
    /// the SOA's names and the reverse zones' apexes (a server can prepare their wire forms).
    pub fn names(&self) -> Vec<String> {
        let mut names: HashSet<&str> = HashSet::new();
        for (owner, values) in &self.nodes {
            names.insert(owner);
            for v in values {
                match v {
                    Value::Cname(t) | Value::Ptr(t) | Value::Srv { target: t, .. } => {
                        names.insert(t);
                    }
                    _ => {}
                }
            }
        }
        names.extend(self.ptr.values().map(String::as_str));
        names.extend(self.hosts.values().map(String::as_str));
        let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        names.push(self.origin.clone());
        names.push(format!("hostmaster.{}", self.origin));
        names.extend(
            self.subnets
                .iter()
                .map(|&(net, mask)| reverse_apex(net, mask).0),
        );
        names.extend(
            self.subnets6
                .iter()
                .map(|&(net, mask)| reverse_apex6(net, mask).0),
        );
        names.sort();
        names.dedup();
        names
    }

    /// Whether `client` may have names outside the zones resolved through us.
    pub fn may_forward(&self, client: IpAddr) -> bool {
        self.forwarding
            && match client {
                IpAddr::V4(v4) => self.in_subnets(v4),
                // An IPv4-mapped IPv6 peer (a dual-stack socket) is the IPv4 client it maps.
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => self.in_subnets(v4),
                    None => self.in_subnets6(v6),
                },
            }
    }

    /// Decides the answer to `qname` (any case, with or without the trailing dot) of type
    /// `qtype` from `client`, reading leases through `lookup`.
    pub fn answer(
        &self,
        qname: &str,
        qtype: Qtype,
        client: IpAddr,
        lookup: &dyn HostLookup,
    ) -> Decision {
        let lower;
        let mut name = qname.strip_suffix('.').unwrap_or(qname);
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            name = &lower;
        }
        if in_zone(name, &self.origin) {
            return self.forward_zone(name, qtype, lookup);
        }
        if let Some(octets) = reverse_octets(name)
            && let Some(decision) = self.reverse_zone(name, &octets, qtype, lookup)
        {
            return decision;
        }
        if let Some(nibbles) = reverse_nibbles(name)
            && let Some(decision) = self.reverse_zone6(name, &nibbles, qtype, lookup)
        {
            return decision;
        }
        if self.may_forward(client) {
            Decision::Forward
        } else {
            Decision::Refuse
        }
    }

    fn soa(&self, owner: &str) -> Resolved {
        Resolved {
            name: owner.to_owned(),
            ttl: self.ttl,
            data: Rdata::Soa {
                mname: self.origin.clone(),
                rname: format!("hostmaster.{}", self.origin),
                serial: 1,
                minimum: self.ttl,
            },
        }
    }

    fn answer_with(&self, rcode: Rcode, records: Vec<Resolved>, apex: &str) -> Decision {
        let soa = records.is_empty().then(|| self.soa(apex));
        Decision::Answer {
            rcode,
            records,
            soa,
        }
    }

    fn forward_zone(&self, qname: &str, qtype: Qtype, lookup: &dyn HostLookup) -> Decision {
        let mut records = Vec::new();
        if qname == self.origin && matches!(qtype, Qtype::Soa | Qtype::Any) {
            records.push(self.soa(qname));
        }
        let mut owner = qname.to_owned();
        let mut found = self.node(qname);
        if found.is_none() && records.is_empty() {
            if qname == self.origin || self.between.contains(qname) {
                return self.answer_with(Rcode::NoError, records, &self.origin);
            }
            return self.answer_with(Rcode::NxDomain, records, &self.origin);
        }
        for _ in 0..MAX_CHAIN {
            let Some(values) = found else { break };
            let mut next = None;
            for v in values {
                match (v, qtype) {
                    (Value::Cname(t), Qtype::Cname | Qtype::Any) => {
                        records.push(self.rr(&owner, Rdata::Cname(t.clone())))
                    }
                    (Value::Cname(t), _) => {
                        records.push(self.rr(&owner, Rdata::Cname(t.clone())));
                        next = Some(t.clone());
                    }
                    (Value::A(a), Qtype::A | Qtype::Any) => {
                        records.push(self.rr(&owner, Rdata::A(*a)))
                    }
                    (Value::HostA(h) | Value::Host(h), Qtype::A | Qtype::Aaaa | Qtype::Any) => {
                        let v4 = matches!(qtype, Qtype::A | Qtype::Any)
                            .then(|| h.resolve(lookup))
                            .flatten()
                            .map(Rdata::A);
                        let v6 = matches!(qtype, Qtype::Aaaa | Qtype::Any)
                            .then(|| h.resolve6(lookup))
                            .flatten()
                            .map(Rdata::Aaaa);
                        for data in v4.into_iter().chain(v6) {
                            let rr = self.rr(&owner, data);
                            // Two targets on one address (a master that is also the bootstrap
                            // in a lab) make one record, not two.
                            if !records.contains(&rr) {
                                records.push(rr);
                            }
                        }
                    }
                    (
                        Value::Srv {
                            priority,
                            weight,
                            port,
                            target,
                        },
                        Qtype::Srv | Qtype::Any,
                    ) => records.push(self.rr(
                        &owner,
                        Rdata::Srv {
                            priority: *priority,
                            weight: *weight,
                            port: *port,
                            target: target.clone(),
                        },
                    )),
                    (Value::Txt(t), Qtype::Txt | Qtype::Any) => {
                        records.push(self.rr(&owner, Rdata::Txt(t.clone())))
                    }
                    _ => {}
                }
            }
            match next {
                Some(target) if in_zone(&target, &self.origin) => {
                    found = self.node(&target);
                    owner = target;
                }
                _ => break,
            }
        }
        self.answer_with(Rcode::NoError, records, &self.origin)
    }

    /// The values at `name`, or at the wildcard that covers it.
    fn node(&self, name: &str) -> Option<&Vec<Value>> {
        if let Some(values) = self.nodes.get(name) {
            return Some(values);
        }
        // The closest encloser is the nearest existing ancestor; only its wildcard applies.
        let mut up = parent(name);
        while let Some(p) = up {
            if self.nodes.contains_key(p) || self.between.contains(p) || p == self.origin {
                let mut wildcard = String::with_capacity(p.len() + 2);
                wildcard.push_str("*.");
                wildcard.push_str(p);
                return self.nodes.get(&wildcard);
            }
            up = parent(p);
        }
        None
    }

    fn rr(&self, owner: &str, data: Rdata) -> Resolved {
        Resolved {
            name: owner.to_owned(),
            ttl: self.ttl,
            data,
        }
    }

    /// `None` when the name is outside every served subnet's reverse zone.
    fn reverse_zone(
        &self,
        qname: &str,
        octets: &[u8],
        qtype: Qtype,
        lookup: &dyn HostLookup,
    ) -> Option<Decision> {
        let mut padded = [0u8; 4];
        padded[..octets.len()].copy_from_slice(octets);
        let partial = u32::from_be_bytes(padded);
        let bits = 8 * octets.len() as u32;
        // The subnet this name is inside of or above; reverse zones are cut at octets.
        let &(net, mask) = self.subnets.iter().find(|&&(net, mask)| {
            let common = mask & u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            bits >= 8 && partial & common == net & common
        })?;
        let (apex, zone_octets) = reverse_apex(net, mask);
        if octets.len() < zone_octets {
            // Above the zone cut: not ours after all.
            return None;
        }
        let name = if octets.len() < 4 {
            ReverseName::Between
        } else if partial & mask != net {
            ReverseName::Nobody
        } else {
            let addr = Ipv4Addr::from(partial);
            self.holder(self.ptr.get(&addr), IpAddr::V4(addr), lookup)
        };
        Some(self.reverse_answer(qname, qtype, &apex, name))
    }

    /// The host name of `addr` inside a served subnet: its fixed reverse record, else the name
    /// of the host whose lease holds it.
    fn holder(&self, fixed: Option<&String>, addr: IpAddr, lookup: &dyn HostLookup) -> ReverseName {
        let target = fixed.cloned().or_else(|| {
            let mac = lookup.mac_for(addr)?;
            self.hosts.get(&mac).cloned()
        });
        target.map_or(ReverseName::Nobody, ReverseName::Host)
    }

    /// The answer for `qname` inside the reverse zone at `apex`, of either family.
    fn reverse_answer(&self, qname: &str, qtype: Qtype, apex: &str, name: ReverseName) -> Decision {
        let mut records = Vec::new();
        match name {
            ReverseName::Between => {
                if qname == apex && matches!(qtype, Qtype::Soa | Qtype::Any) {
                    records.push(self.soa(apex));
                }
            }
            ReverseName::Nobody => return self.answer_with(Rcode::NxDomain, Vec::new(), apex),
            ReverseName::Host(target) => {
                if matches!(qtype, Qtype::Ptr | Qtype::Any) {
                    records.push(self.rr(qname, Rdata::Ptr(target)));
                }
            }
        }
        self.answer_with(Rcode::NoError, records, apex)
    }

    /// [`reverse_zone`](Self::reverse_zone) for `ip6.arpa`: `None` when the name is outside
    /// every served IPv6 subnet's reverse zone.
    fn reverse_zone6(
        &self,
        qname: &str,
        nibbles: &[u8],
        qtype: Qtype,
        lookup: &dyn HostLookup,
    ) -> Option<Decision> {
        let partial = nibbles
            .iter()
            .fold(0u128, |a, &d| (a << 4) | u128::from(d))
            .checked_shl(128 - 4 * nibbles.len() as u32)
            .unwrap_or(0);
        let bits = 4 * nibbles.len() as u32;
        let &(net, mask) = self.subnets6.iter().find(|&&(net, mask)| {
            let common = mask & u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            bits >= 4 && partial & common == net & common
        })?;
        let (apex, zone_nibbles) = reverse_apex6(net, mask);
        if nibbles.len() < zone_nibbles {
            return None;
        }
        let name = if nibbles.len() < 32 {
            ReverseName::Between
        } else if partial & mask != net {
            ReverseName::Nobody
        } else {
            let addr = Ipv6Addr::from(partial);
            self.holder(self.ptr6.get(&addr), IpAddr::V6(addr), lookup)
        };
        Some(self.reverse_answer(qname, qtype, &apex, name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::NoLookup;

    const INSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 22, 0, 50));
    const OUTSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));

    fn mac(n: u8) -> Mac {
        Mac([0x52, 0x54, 0, 0x12, 0x60, n])
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 22, 0, n)
    }

    /// A lease table with one host on one address.
    struct OneLease(Mutex<Option<(Mac, Ipv4Addr)>>);

    impl HostLookup for OneLease {
        fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
            let l = *self.0.lock().unwrap();
            l.filter(|(_, a)| IpAddr::V4(*a) == addr).map(|(m, _)| m)
        }
        fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
            let l = *self.0.lock().unwrap();
            l.filter(|(m, _)| *m == mac).map(|(_, a)| IpAddr::V4(a))
        }
    }

    fn entries() -> Vec<Entry> {
        let host = |n, reserved| HostAddr {
            mac: mac(n),
            reserved,
            reserved6: None,
        };
        vec![
            Entry::new("master-0", Value::Host(host(1, Some(ip(10))))),
            Entry::new("worker-0", Value::Host(host(2, None))),
            Entry::new("api", Value::HostA(host(1, Some(ip(10))))),
            Entry::new("api", Value::A(ip(5))),
            Entry::new("api-int", Value::Cname("api".into())),
            Entry::new("*.apps", Value::HostA(host(2, None))),
            Entry::new("etcd-0", Value::HostA(host(1, Some(ip(10))))),
            Entry::new(
                "_etcd-server-ssl._tcp",
                Value::Srv {
                    priority: 0,
                    weight: 10,
                    port: 2380,
                    target: "etcd-0".into(),
                },
            ),
            Entry::new("note", Value::Txt("hello".into())),
            Entry::new("www", Value::Cname("www.example.org.".into())),
            Entry::new("7.0.22.172.in-addr.arpa.", Value::Ptr("lb".into())),
        ]
    }

    fn zone() -> Zone {
        Zone::new(&Config {
            origin: "ocp.example.com".into(),
            subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), 24)],
            entries: entries(),
            upstream: vec!["192.0.2.53:53".parse().unwrap()],
            ..Config::default()
        })
        .unwrap()
    }

    /// The decision as text: `NOERROR a=..;cname=..`, `NXDOMAIN`, `FORWARD`, `REFUSED`.
    fn check(
        zone: &Zone,
        lookup: &dyn HostLookup,
        client: IpAddr,
        q: &str,
        qtype: Qtype,
        expected: &str,
    ) {
        let got = match zone.answer(q, qtype, client, lookup) {
            Decision::Forward => "FORWARD".to_owned(),
            Decision::Refuse => "REFUSED".to_owned(),
            Decision::Answer {
                rcode,
                records,
                soa,
            } => {
                let mut s = match rcode {
                    Rcode::NoError => "NOERROR".to_owned(),
                    Rcode::NxDomain => "NXDOMAIN".to_owned(),
                };
                for r in &records {
                    let d = match &r.data {
                        Rdata::A(a) => format!("a={a}"),
                        Rdata::Aaaa(a) => format!("aaaa={a}"),
                        Rdata::Cname(t) => format!("cname={t}"),
                        Rdata::Ptr(t) => format!("ptr={t}"),
                        Rdata::Txt(t) => format!("txt={t}"),
                        Rdata::Srv { port, target, .. } => format!("srv={port}:{target}"),
                        Rdata::Soa { .. } => "soa".to_owned(),
                    };
                    s.push_str(&format!(" {}:{d}", r.name));
                }
                assert_eq!(
                    soa.is_some(),
                    records.is_empty(),
                    "{q}: SOA only in negative answers"
                );
                s
            }
        };
        assert_eq!(got, expected, "{q} {qtype:?}");
    }

    /// AAAA records follow a host's DHCPv6 reservation, else its v6 lease (the second of a
    /// dual-stack pair of lookups), while A keeps following the v4 one.
    #[test]
    fn aaaa_follows_the_v6_reservation_and_lease() {
        let v6 = |n: u16| Ipv6Addr::new(0xfd00, 0x22, 0, 0, 0, 0, 0, n);
        let host = |n, reserved, reserved6| HostAddr {
            mac: mac(n),
            reserved,
            reserved6,
        };
        let z = Zone::new(&Config {
            origin: "ocp.example.com".into(),
            subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), 24)],
            entries: vec![
                Entry::new(
                    "master-0",
                    Value::Host(host(1, Some(ip(10)), Some(v6(0x10)))),
                ),
                Entry::new("worker-0", Value::Host(host(2, None, None))),
                Entry::new("api", Value::HostA(host(1, Some(ip(10)), Some(v6(0x10))))),
            ],
            ..Config::default()
        })
        .unwrap();
        /// A v6 lease table with one host.
        struct V6Lease(Mac, Ipv6Addr);
        impl HostLookup for V6Lease {
            fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
                (addr == IpAddr::V6(self.1)).then_some(self.0)
            }
            fn addr_for(&self, mac: Mac) -> Option<IpAddr> {
                (mac == self.0).then_some(IpAddr::V6(self.1))
            }
        }
        let v4 = OneLease(Mutex::new(Some((mac(2), ip(100)))));
        let both = (v4, V6Lease(mac(2), v6(0x100)));
        let c = |q, t, e: &str| check(&z, &both, INSIDE, q, t, e);
        c(
            "master-0.ocp.example.com",
            Qtype::Aaaa,
            "NOERROR master-0.ocp.example.com:aaaa=fd00:22::10",
        );
        c(
            "api.ocp.example.com",
            Qtype::Any,
            "NOERROR api.ocp.example.com:a=172.22.0.10 api.ocp.example.com:aaaa=fd00:22::10",
        );
        c(
            "worker-0.ocp.example.com",
            Qtype::Aaaa,
            "NOERROR worker-0.ocp.example.com:aaaa=fd00:22::100",
        );
        c(
            "worker-0.ocp.example.com",
            Qtype::A,
            "NOERROR worker-0.ocp.example.com:a=172.22.0.100",
        );
        // No v6 lease: no data (NOERROR with the SOA), the name still exists.
        let c = |q, t, e: &str| check(&z, &NoLookup, INSIDE, q, t, e);
        c("worker-0.ocp.example.com", Qtype::Aaaa, "NOERROR");
    }

    #[test]
    fn forward_zone_answers() {
        let z = zone();
        let l = &NoLookup;
        let c = |q, t, e: &str| check(&z, l, INSIDE, q, t, e);
        c(
            "master-0.ocp.example.com",
            Qtype::A,
            "NOERROR master-0.ocp.example.com:a=172.22.0.10",
        );
        c(
            "MASTER-0.ocp.example.com.",
            Qtype::A,
            "NOERROR master-0.ocp.example.com:a=172.22.0.10",
        );
        c("master-0.ocp.example.com", Qtype::Aaaa, "NOERROR");
        c("worker-0.ocp.example.com", Qtype::A, "NOERROR"); // no lease yet
        c(
            "api.ocp.example.com",
            Qtype::A,
            "NOERROR api.ocp.example.com:a=172.22.0.10 api.ocp.example.com:a=172.22.0.5",
        );
        c(
            "api-int.ocp.example.com",
            Qtype::A,
            "NOERROR api-int.ocp.example.com:cname=api.ocp.example.com api.ocp.example.com:a=172.22.0.10 api.ocp.example.com:a=172.22.0.5",
        );
        c(
            "api-int.ocp.example.com",
            Qtype::Cname,
            "NOERROR api-int.ocp.example.com:cname=api.ocp.example.com",
        );
        c(
            "_etcd-server-ssl._tcp.ocp.example.com",
            Qtype::Srv,
            "NOERROR _etcd-server-ssl._tcp.ocp.example.com:srv=2380:etcd-0.ocp.example.com",
        );
        c("_tcp.ocp.example.com", Qtype::A, "NOERROR");
        c(
            "note.ocp.example.com",
            Qtype::Txt,
            "NOERROR note.ocp.example.com:txt=hello",
        );
        c(
            "www.ocp.example.com",
            Qtype::A,
            "NOERROR www.ocp.example.com:cname=www.example.org",
        );
        c("ocp.example.com", Qtype::Soa, "NOERROR ocp.example.com:soa");
        c("ocp.example.com", Qtype::A, "NOERROR");
        c("nope.ocp.example.com", Qtype::A, "NXDOMAIN");
        c("a.b.nope.ocp.example.com", Qtype::A, "NXDOMAIN");
        c("example.org", Qtype::A, "FORWARD");
        c("example.com", Qtype::A, "FORWARD");
        check(&z, l, OUTSIDE, "example.org", Qtype::A, "REFUSED");
        // Authoritative names are answered to anyone.
        check(
            &z,
            l,
            OUTSIDE,
            "master-0.ocp.example.com",
            Qtype::A,
            "NOERROR master-0.ocp.example.com:a=172.22.0.10",
        );
    }

    #[test]
    fn wildcards_follow_the_closest_encloser() {
        let z = zone();
        let lease = OneLease(Mutex::new(Some((mac(2), ip(120)))));
        let c = |q, e: &str| check(&z, &lease, INSIDE, q, Qtype::A, e);
        c(
            "console-openshift-console.apps.ocp.example.com",
            "NOERROR console-openshift-console.apps.ocp.example.com:a=172.22.0.120",
        );
        c(
            "a.b.apps.ocp.example.com",
            "NOERROR a.b.apps.ocp.example.com:a=172.22.0.120",
        );
        c("apps.ocp.example.com", "NOERROR");
        c("x.note.ocp.example.com", "NXDOMAIN");
    }

    #[test]
    fn host_records_follow_leases_both_ways() {
        let z = zone();
        let lease = OneLease(Mutex::new(Some((mac(2), ip(120)))));
        let c = |q, t, e: &str| check(&z, &lease, INSIDE, q, t, e);
        c(
            "worker-0.ocp.example.com",
            Qtype::A,
            "NOERROR worker-0.ocp.example.com:a=172.22.0.120",
        );
        c(
            "120.0.22.172.in-addr.arpa",
            Qtype::Ptr,
            "NOERROR 120.0.22.172.in-addr.arpa:ptr=worker-0.ocp.example.com",
        );
        *lease.0.lock().unwrap() = Some((mac(2), ip(121)));
        c(
            "worker-0.ocp.example.com",
            Qtype::A,
            "NOERROR worker-0.ocp.example.com:a=172.22.0.121",
        );
        c("120.0.22.172.in-addr.arpa", Qtype::Ptr, "NXDOMAIN");
        c(
            "121.0.22.172.in-addr.arpa.",
            Qtype::Ptr,
            "NOERROR 121.0.22.172.in-addr.arpa:ptr=worker-0.ocp.example.com",
        );
        c(
            "10.0.22.172.in-addr.arpa",
            Qtype::Ptr,
            "NOERROR 10.0.22.172.in-addr.arpa:ptr=master-0.ocp.example.com",
        );
        c(
            "7.0.22.172.in-addr.arpa",
            Qtype::Ptr,
            "NOERROR 7.0.22.172.in-addr.arpa:ptr=lb.ocp.example.com",
        );
        c("10.0.22.172.in-addr.arpa", Qtype::A, "NOERROR");
        c(
            "0.22.172.in-addr.arpa",
            Qtype::Soa,
            "NOERROR 0.22.172.in-addr.arpa:soa",
        );
        c("0.22.172.in-addr.arpa", Qtype::Ptr, "NOERROR");
        c("22.172.in-addr.arpa", Qtype::Ptr, "FORWARD");
        c("1.1.22.172.in-addr.arpa", Qtype::Ptr, "FORWARD");
        c("8.8.8.8.in-addr.arpa", Qtype::Ptr, "FORWARD");
        c("010.0.22.172.in-addr.arpa", Qtype::Ptr, "FORWARD");
        check(
            &z,
            &lease,
            OUTSIDE,
            "8.8.8.8.in-addr.arpa",
            Qtype::Ptr,
            "REFUSED",
        );
    }

    #[test]
    fn no_upstream_refuses_everyone() {
        let z = Zone::new(&Config {
            origin: "ocp.example.com".into(),
            subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), 24)],
            ..Config::default()
        })
        .unwrap();
        check(&z, &NoLookup, INSIDE, "example.org", Qtype::A, "REFUSED");
        assert!(!z.may_forward(INSIDE));
    }

    fn refused(extra: Entry, expected: &str) {
        let mut entries = entries();
        entries.push(extra);
        let index = entries.len() - 1;
        let got = Zone::new(&Config {
            origin: "ocp.example.com".into(),
            subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), 24)],
            entries,
            ..Config::default()
        });
        match got {
            Err(Error::Entry {
                index: i,
                field,
                reason,
                ..
            }) => {
                assert_eq!(i, index);
                let text = format!("{field}: {reason}");
                assert!(text.contains(expected), "{text:?} lacks {expected:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn collisions_and_strays_are_refused() {
        let host = |n| {
            Value::Host(HostAddr {
                mac: mac(n),
                reserved: None,
                reserved6: None,
            })
        };
        refused(
            Entry::new("master-0", Value::A(ip(3))),
            "name: master-0.ocp.example.com has a host record already",
        );
        refused(Entry::new("master-0", host(9)), "has a host record already");
        refused(
            Entry::new("api", Value::Cname("x".into())),
            "a CNAME must be alone",
        );
        refused(Entry::new("api-int", Value::A(ip(3))), "a A must be alone");
        refused(
            Entry::new("api", Value::A(ip(5))),
            "has this A record already",
        );
        refused(
            Entry::new("other", host(1)),
            "value: host 52:54:00:12:60:01 has a name already",
        );
        refused(
            Entry::new("api.example.org.", Value::A(ip(3))),
            "outside the zone",
        );
        refused(Entry::new("a b", Value::A(ip(3))), "name: \"a b\"");
        refused(Entry::new("x", Value::Cname("bad name".into())), "value:");
        refused(
            Entry::new("7.0.22.172.in-addr.arpa.", Value::Ptr("x".into())),
            "has a reverse name already",
        );
        refused(
            Entry::new("7.7.7.7.in-addr.arpa.", Value::Ptr("x".into())),
            "outside the served subnets",
        );
        refused(
            Entry::new("x", Value::Ptr("y".into())),
            "not the reverse name",
        );
        refused(Entry::new("@", Value::Cname("y".into())), "apex");
        refused(
            Entry::new(
                "*.h",
                Value::Host(HostAddr {
                    mac: mac(9),
                    reserved: None,
                    reserved6: None,
                }),
            ),
            "wildcard",
        );
        refused(Entry::new("t", Value::Txt("x".repeat(256))), "255");
        let dup = Value::Host(HostAddr {
            mac: mac(9),
            reserved: Some(ip(10)),
            reserved6: None,
        });
        refused(
            Entry::new("twin", dup),
            "172.22.0.10 has a reverse name already",
        );
    }

    #[test]
    fn values_parse_as_plans_write_them() {
        assert_eq!(Value::parse("a", "172.22.0.5").unwrap(), Value::A(ip(5)));
        assert_eq!(
            Value::parse("SRV", "0 10 2380 etcd-0").unwrap(),
            Value::Srv {
                priority: 0,
                weight: 10,
                port: 2380,
                target: "etcd-0".into()
            }
        );
        assert_eq!(
            Value::parse("cname", "api").unwrap(),
            Value::Cname("api".into())
        );
        for (kind, text) in [
            ("A", "172.22.0"),
            ("SRV", "0 10 etcd-0"),
            ("SRV", "0 10 99999 x"),
            ("MX", "x"),
        ] {
            assert!(Value::parse(kind, text).is_err(), "{kind} {text}");
        }
    }

    #[test]
    fn origins_and_subnets_are_checked() {
        let bad = |origin: &str, prefix| {
            Zone::new(&Config {
                origin: origin.into(),
                subnets: vec![(Ipv4Addr::new(172, 22, 0, 0), prefix)],
                ..Config::default()
            })
            .is_err()
        };
        assert!(!bad("ocp.example.com", 24));
        assert!(bad("", 24));
        assert!(bad("*.example.com", 24));
        assert!(bad("0.22.172.in-addr.arpa", 24));
        assert!(bad("ocp.example.com", 0));
        assert!(bad("ocp.example.com", 33));
    }

    /// A lease table with one host on one IPv6 address.
    struct OneLease6(Mac, Ipv6Addr);

    impl HostLookup for OneLease6 {
        fn mac_for(&self, addr: IpAddr) -> Option<Mac> {
            (addr == IpAddr::V6(self.1)).then_some(self.0)
        }
        fn addr_for(&self, _: Mac) -> Option<IpAddr> {
            None
        }
        fn addr6_for(&self, mac: Mac) -> Option<Ipv6Addr> {
            (mac == self.0).then_some(self.1)
        }
    }

    #[test]
    fn ipv6_reverse_names_come_from_reservations_and_leases() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let z = Zone::new(&Config {
            origin: "ocp.example.com".into(),
            subnets6: vec![(v6("fd00:126::"), 64)],
            upstream: vec!["[fd00:126::53]:53".parse().unwrap()],
            entries: vec![
                Entry::new(
                    "master-0",
                    Value::Host(HostAddr {
                        mac: mac(1),
                        reserved: None,
                        reserved6: Some(v6("fd00:126::10")),
                    }),
                ),
                Entry::new(
                    "worker-0",
                    Value::Host(HostAddr {
                        mac: mac(2),
                        reserved: None,
                        reserved6: None,
                    }),
                ),
            ],
            ..Config::default()
        })
        .unwrap();
        let lease = OneLease6(mac(2), v6("fd00:126::1:7"));
        let client = IpAddr::V6(v6("fd00:126::99"));
        let c = |q: &str, t, e: &str| check(&z, &lease, client, q, t, e);
        let rev = |a: &str| reverse_name6(v6(a));
        c(
            &rev("fd00:126::10"),
            Qtype::Ptr,
            &format!(
                "NOERROR {}:ptr=master-0.ocp.example.com",
                rev("fd00:126::10")
            ),
        );
        // The lease's holder, found by its MAC.
        c(
            &rev("fd00:126::1:7"),
            Qtype::Ptr,
            &format!(
                "NOERROR {}:ptr=worker-0.ocp.example.com",
                rev("fd00:126::1:7")
            ),
        );
        c(&rev("fd00:126::1:8"), Qtype::Ptr, "NXDOMAIN");
        // The zone's apex (16 nibbles for a /64) and the names between it and an address.
        let apex = "0.0.0.0.0.0.0.0.6.2.1.0.0.0.d.f.ip6.arpa";
        c(apex, Qtype::Soa, &format!("NOERROR {apex}:soa"));
        c(&format!("1.{apex}"), Qtype::Ptr, "NOERROR");
        // Above the cut, or another prefix: not ours; a v6 client of the subnet may forward.
        c("6.2.1.0.0.0.d.f.ip6.arpa", Qtype::Ptr, "FORWARD");
        c(&rev("fd00:127::10"), Qtype::Ptr, "FORWARD");
        check(
            &z,
            &lease,
            IpAddr::V6(v6("2001:db8::1")),
            &rev("fd00:127::10"),
            Qtype::Ptr,
            "REFUSED",
        );
        c("example.org", Qtype::Aaaa, "FORWARD");
        assert!(z.names().contains(&apex.to_owned()));
        assert!(matches!(
            Zone::new(&Config {
                origin: "ocp.example.com".into(),
                subnets6: vec![(v6("fd00::"), 129)],
                ..Config::default()
            }),
            Err(Error::Subnet6 { prefix: 129, .. })
        ));
    }
}
