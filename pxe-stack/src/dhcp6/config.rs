//! Server configuration: plain data, checked once by [`Policy::new`].

use std::collections::HashSet;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::Mac;

/// The largest dynamic pool, in addresses (pool searches stay bounded).
pub const MAX_POOL: u128 = 1 << 16;

/// How the server takes part in DHCPv6 on its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Hand out addresses from the pools and the reservations.
    #[default]
    Authoritative,
    /// Answer only hosts with a reservation; stay silent for every other MAC.
    ReservationsOnly,
    /// Answer nothing.
    Off,
}

/// An inclusive range of addresses handed out dynamically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range6 {
    /// The first address of the pool.
    pub start: Ipv6Addr,
    /// The last address of the pool.
    pub end: Ipv6Addr,
}

/// One IPv6 link the server answers for: the local one (holding
/// [`Config::server_addr`]), or one behind a relay agent (holding the relay's link address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet6 {
    /// The prefix, such as `fd00:77::`.
    pub prefix: Ipv6Addr,
    /// The prefix length, such as 64.
    pub prefix_len: u8,
    /// The dynamic pool; `None` for a link with reservations only.
    #[serde(default)]
    pub pool: Option<Range6>,
}

impl Subnet6 {
    /// A subnet with no pool.
    pub fn new(prefix: Ipv6Addr, prefix_len: u8) -> Self {
        Subnet6 {
            prefix,
            prefix_len,
            pool: None,
        }
    }

    /// Whether `addr` lies inside this subnet.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len.min(128)))
            .unwrap_or(0);
        u128::from(addr) & mask == u128::from(self.prefix) & mask
    }
}

/// A static assignment: this MAC always gets this address, whatever DUID it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation6 {
    /// The host.
    pub mac: Mac,
    /// Its address.
    pub addr: Ipv6Addr,
    /// Its hostname (for logs and events; DHCPv6 has no hostname option of its own).
    #[serde(default)]
    pub hostname: Option<String>,
}

/// What to boot, chosen by the client's architecture (option 61) and classes (15, 16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFiles6 {
    /// The TFTP path for x86-64 UEFI PXE (architectures 7 and 9), sent as
    /// `tftp://[server]/<path>`.
    #[serde(default)]
    pub efi_x64: Option<String>,
    /// The TFTP path for ARM64 UEFI PXE (architecture 11).
    #[serde(default)]
    pub efi_arm64: Option<String>,
    /// The whole URL for UEFI HTTP boot (vendor class `HTTPClient`, architectures 16 and 19).
    #[serde(default)]
    pub http_boot_url: Option<String>,
    /// The iPXE script URL for iPXE (user class `iPXE`); `{mac}` is replaced by the host's MAC
    /// in `hexhyp` form.
    #[serde(default)]
    pub ipxe_script_url: Option<String>,
    /// Per-host boot files for x86-64 UEFI, chosen before [`BootFiles6::efi_x64`] and
    /// [`BootFiles6::http_boot_url`] (as DHCPv4's `BootFiles::hosts`): a Secure Boot host gets
    /// the signed shim instead of iPXE.
    #[serde(default)]
    pub hosts: Vec<HostBootFiles6>,
}

/// What one host boots instead of the shared x86-64 UEFI files (its iPXE and ARM64 answers
/// stay the shared ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBootFiles6 {
    /// The host.
    pub mac: Mac,
    /// The TFTP path for its x86-64 UEFI PXE firmware (architectures 7 and 9), such as
    /// `shimx64.efi`.
    #[serde(default)]
    pub efi_x64: Option<String>,
    /// The URL for its UEFI HTTP boot firmware (class `HTTPClient`).
    #[serde(default)]
    pub http_boot_url: Option<String>,
}

impl Default for BootFiles6 {
    fn default() -> Self {
        BootFiles6 {
            efi_x64: Some("ipxe.efi".into()),
            efi_arm64: None,
            http_boot_url: None,
            ipxe_script_url: None,
            hosts: Vec::new(),
        }
    }
}

/// Everything the DHCPv6 server needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// How the server answers.
    #[serde(default)]
    pub mode: Mode,
    /// The server's address on the provisioning link: it picks the local [`Subnet6`] and is the
    /// host of the TFTP boot-file URLs.
    pub server_addr: Ipv6Addr,
    /// The server's DUID (option 2). `None`: a DUID-UUID (type 4) made of `server_addr`, stable
    /// as long as the address is.
    #[serde(default)]
    pub server_duid: Option<Vec<u8>>,
    /// The links served.
    pub subnets: Vec<Subnet6>,
    /// Fixed addresses by MAC.
    #[serde(default)]
    pub reservations: Vec<Reservation6>,
    /// DNS servers (option 23).
    #[serde(default)]
    pub dns: Vec<Ipv6Addr>,
    /// DNS search domains (option 24, RFC 3646), e.g. the cluster's zone.
    #[serde(default)]
    pub domain_search: Vec<String>,
    /// The valid lifetime of an address, in seconds (the preferred lifetime is the same; T1 is
    /// half, T2 four fifths).
    pub lease_secs: u32,
    /// Whether a Solicit with Rapid Commit (option 14) is answered at once with a Reply.
    pub rapid_commit: bool,
    /// What to boot.
    #[serde(default)]
    pub boot: BootFiles6,
    /// Take the client's MAC from its DUID (LL or LLT) before option 79 and the link-local
    /// address. Off by default: a DUID is made once per host, often from another NIC. For
    /// load generators such as `perfdhcp -6`, whose simulated clients share one link-local
    /// address and differ only in their DUIDs.
    #[serde(default)]
    pub duid_first: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Authoritative,
            server_addr: Ipv6Addr::UNSPECIFIED,
            server_duid: None,
            subnets: Vec::new(),
            reservations: Vec::new(),
            dns: Vec::new(),
            domain_search: Vec::new(),
            lease_secs: 3600,
            rapid_commit: true,
            boot: BootFiles6::default(),
            duid_first: false,
        }
    }
}

/// A checked [`Config`], ready for [`respond`](super::respond).
#[derive(Debug, Clone)]
pub struct Policy {
    config: Config,
    duid: Vec<u8>,
    search: Vec<dhcproto::Name>,
}

impl Policy {
    /// Checks `config`: prefix lengths, pools inside their subnets and at most [`MAX_POOL`]
    /// addresses, reservations inside a subnet and unique, the DUID's size, a lease time.
    pub fn new(config: Config) -> Result<Policy, Error> {
        let bad = |reason: String| Err(Error::Config { reason });
        if config.lease_secs == 0 {
            return bad("lease_secs must be above 0".into());
        }
        let mut search = Vec::with_capacity(config.domain_search.len());
        for d in &config.domain_search {
            match dhcproto::Name::from_utf8(d) {
                Ok(mut name) if !d.is_empty() => {
                    name.set_fqdn(true);
                    search.push(name);
                }
                Ok(_) => return bad("an empty search domain".into()),
                Err(e) => return bad(format!("search domain {d:?}: {e}")),
            }
        }
        for s in &config.subnets {
            if s.prefix_len > 128 {
                return bad(format!(
                    "prefix length {} of {} is above 128",
                    s.prefix_len, s.prefix
                ));
            }
            if let Some(p) = s.pool {
                if u128::from(p.start) > u128::from(p.end) {
                    return bad(format!("pool {}-{} ends before it starts", p.start, p.end));
                }
                if !s.contains(p.start) || !s.contains(p.end) {
                    return bad(format!(
                        "pool {}-{} is not inside {}/{}",
                        p.start, p.end, s.prefix, s.prefix_len
                    ));
                }
                if u128::from(p.end) - u128::from(p.start) >= MAX_POOL {
                    return bad(format!(
                        "pool {}-{} holds more than {MAX_POOL} addresses",
                        p.start, p.end
                    ));
                }
            }
        }
        let mut macs = HashSet::new();
        let mut addrs = HashSet::new();
        for r in &config.reservations {
            if !config.subnets.iter().any(|s| s.contains(r.addr)) {
                return Err(Error::ReservationOutsideSubnets {
                    mac: r.mac,
                    addr: r.addr,
                });
            }
            if !macs.insert(r.mac) || !addrs.insert(r.addr) {
                return Err(Error::DuplicateReservation {
                    mac: r.mac,
                    addr: r.addr,
                });
            }
        }
        let duid = match &config.server_duid {
            Some(d) if d.len() < 3 || d.len() > 130 => {
                return bad(format!("server DUID of {} bytes (3 to 130)", d.len()));
            }
            Some(d) => d.clone(),
            None => {
                let mut d = vec![0, 4];
                d.extend(config.server_addr.octets());
                d
            }
        };
        Ok(Policy {
            config,
            duid,
            search,
        })
    }

    /// The checked configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The search domains (option 24), parsed and fully qualified.
    pub(crate) fn search(&self) -> &[dhcproto::Name] {
        &self.search
    }

    /// The server's DUID (option 2).
    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    /// The subnet for a client: the one holding the innermost relay's link address, or the
    /// one holding [`Config::server_addr`] for a client on the local link.
    pub(crate) fn subnet_for(&self, link: Option<Ipv6Addr>) -> Option<(usize, &Subnet6)> {
        let addr = link.unwrap_or(self.config.server_addr);
        self.config
            .subnets
            .iter()
            .enumerate()
            .find(|(_, s)| s.contains(addr))
    }

    pub(crate) fn reservation(&self, mac: Mac) -> Option<&Reservation6> {
        self.config.reservations.iter().find(|r| r.mac == mac)
    }

    pub(crate) fn reserved(&self, addr: Ipv6Addr) -> Option<&Reservation6> {
        self.config.reservations.iter().find(|r| r.addr == addr)
    }
}
