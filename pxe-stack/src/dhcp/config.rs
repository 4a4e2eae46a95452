//! Server configuration: plain data, checked once by [`Policy::new`].

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::error::Error;
use crate::{ChainMode, Ipv4Net, LeaseIdentity, Mac};

/// How the server takes part in DHCP on its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Hand out addresses from the dynamic pools and the reservations, and NAK wrong requests.
    #[default]
    Authoritative,
    /// Answer only hosts with a reservation; stay silent for every other MAC.
    ReservationsOnly,
    /// ProxyDHCP: boot information only, beside another DHCP server that hands out addresses
    /// (answers PXE DISCOVERs on port 67 and boot requests on port 4011).
    Proxy,
    /// Answer nothing.
    Off,
}

/// An inclusive range of addresses handed out dynamically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// The first address of the pool.
    pub start: Ipv4Addr,
    /// The last address of the pool.
    pub end: Ipv4Addr,
}

/// A DHCP option sent as-is: code and raw payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawOption {
    /// The option code (1-254).
    pub code: u8,
    /// The payload, without code and length bytes.
    pub data: Vec<u8>,
}

/// One IPv4 subnet the server answers for: the local one, or one behind a relay agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The network address, such as `192.168.126.0`.
    pub network: Ipv4Addr,
    /// The prefix length, such as 24.
    pub prefix_len: u8,
    /// The dynamic pool; `None` for a subnet with reservations only.
    #[serde(default)]
    pub pool: Option<Range>,
    /// The default gateway (option 3).
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// The DNS domain name (option 15).
    #[serde(default)]
    pub domain: Option<String>,
    /// The interface MTU (option 26).
    #[serde(default)]
    pub mtu: Option<u16>,
    /// Further options passed through unchanged (they replace a built-in option of the same code).
    #[serde(default)]
    pub options: Vec<RawOption>,
}

impl Subnet {
    /// A subnet with no pool and no options.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Self {
        Subnet {
            network,
            prefix_len,
            pool: None,
            router: None,
            dns: Vec::new(),
            domain: None,
            mtu: None,
            options: Vec::new(),
        }
    }

    /// The subnet as an [`Ipv4Net`], whose arithmetic the methods below use.
    pub fn net(&self) -> Ipv4Net {
        Ipv4Net::new(self.network, self.prefix_len)
    }

    /// The netmask, such as `255.255.255.0`.
    pub fn mask(&self) -> Ipv4Addr {
        self.net().mask()
    }

    /// Whether `addr` lies inside this subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.net().contains(addr)
    }

    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        self.net().broadcast()
    }
}

/// A static assignment: this MAC always gets this address (and name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The host.
    pub mac: Mac,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its hostname (option 12).
    #[serde(default)]
    pub hostname: Option<String>,
}

/// What to boot, chosen by the client's architecture (option 93) and class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BootFiles {
    /// The TFTP server (siaddr / next-server, option 66); defaults to the server's address.
    pub next_server: Option<Ipv4Addr>,
    /// The file for BIOS PXE (arch 0).
    pub bios: Option<String>,
    /// The file for x86-64 UEFI PXE (arch 7 and 9): `ipxe.efi` or `snponly.efi`.
    pub efi_x64: Option<String>,
    /// The file for ARM64 UEFI PXE (arch 11).
    pub efi_arm64: Option<String>,
    /// The URL for UEFI HTTP boot clients (class `HTTPClient`, arch 15, 16, 19).
    pub http_boot_url: Option<String>,
    /// The URL of the iPXE script for iPXE clients (user class `iPXE` or option 175); `{mac}` is
    /// replaced by the client's MAC in `52-54-00-..` form.
    pub ipxe_script_url: Option<String>,
    /// Send iPXE's `no-pxedhcp` (option 175.176) so iPXE does not wait for ProxyDHCP offers.
    pub ipxe_no_pxedhcp: bool,
    /// How to tell the BIOS PXE ROM from chainloaded iPXE.
    pub chain: ChainMode,
    /// Add option 60 `PXEClient` and option 43 (discovery control: boot file given) to replies
    /// for PXE firmware. Always on in proxy mode.
    pub pxe_vendor_options: bool,
    /// Per-host boot files for x86-64 UEFI, chosen before [`BootFiles::efi_x64`] and
    /// [`BootFiles::http_boot_url`]: a Secure Boot host gets the signed shim instead of iPXE.
    pub hosts: Vec<HostBootFiles>,
}

/// What one host boots instead of the shared x86-64 UEFI files (its iPXE, BIOS and ARM64
/// answers stay the shared ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostBootFiles {
    /// The host.
    pub mac: Mac,
    /// The TFTP file for its x86-64 UEFI PXE firmware (arch 7 and 9), such as `shimx64.efi`.
    #[serde(default)]
    pub efi_x64: Option<String>,
    /// The URL for its UEFI HTTP boot firmware (class `HTTPClient`).
    #[serde(default)]
    pub http_boot_url: Option<String>,
}

impl Default for BootFiles {
    fn default() -> Self {
        BootFiles {
            next_server: None,
            bios: Some("undionly.kpxe".into()),
            efi_x64: Some("ipxe.efi".into()),
            efi_arm64: Some("ipxe-arm64.efi".into()),
            http_boot_url: None,
            ipxe_script_url: None,
            ipxe_no_pxedhcp: true,
            chain: ChainMode::Trust,
            pxe_vendor_options: false,
            hosts: Vec::new(),
        }
    }
}

/// The server's configuration. Plain data: check it with [`Policy::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// How the server takes part.
    pub mode: Mode,
    /// The server's own address on the provisioning interface (server identifier, default
    /// next-server). Its subnet is the local one; others are reached through relays.
    pub server_ip: Ipv4Addr,
    /// The subnets served.
    pub subnets: Vec<Subnet>,
    /// Static MAC to address assignments.
    pub reservations: Vec<Reservation>,
    /// What to boot.
    pub boot: BootFiles,
    /// Lease time in seconds (option 51).
    pub lease_secs: u32,
    /// Renewal time T1 in seconds (option 58); half the lease time when unset.
    pub renewal_secs: Option<u32>,
    /// Rebinding time T2 in seconds (option 59); 7/8 of the lease time when unset.
    pub rebinding_secs: Option<u32>,
    /// How long an offered address stays held for the client that was offered it.
    pub offer_hold_secs: u32,
    /// How long an address declined by a client (in use by someone else) stays out of the pool.
    pub decline_quarantine_secs: u32,
    /// Ping an address of a dynamic pool before offering it, waiting this many milliseconds for
    /// an echo reply; an address that answers is quarantined like a declined one and the next
    /// is offered instead. Off (`None`) by default: firmware retransmits its DISCOVER while the
    /// server waits, and dnsmasq's serial probes held booting VMs for seconds. Reserved
    /// addresses and a client's own bound address are never probed. Needs `CAP_NET_RAW` (or a
    /// `net.ipv4.ping_group_range` that includes the server's group).
    pub ping_probe_ms: Option<u32>,
    /// What a lease belongs to: the MAC (default) or the client identifier (option 61).
    pub lease_identity: LeaseIdentity,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Authoritative,
            server_ip: Ipv4Addr::UNSPECIFIED,
            subnets: Vec::new(),
            reservations: Vec::new(),
            boot: BootFiles::default(),
            lease_secs: 3600,
            renewal_secs: None,
            rebinding_secs: None,
            offer_hold_secs: 60,
            decline_quarantine_secs: 600,
            ping_probe_ms: None,
            lease_identity: LeaseIdentity::Mac,
        }
    }
}

/// The largest dynamic pool accepted, to keep address searches bounded.
pub const MAX_POOL: u32 = 1 << 20;

/// A checked configuration with its lookup indexes, what [`respond`](super::respond) decides with.
#[derive(Debug, Clone)]
pub struct Policy {
    config: Config,
    by_mac: HashMap<Mac, usize>,
    by_addr: HashMap<Ipv4Addr, usize>,
}

impl Policy {
    /// Check `config` and index its reservations.
    ///
    /// Fails, with an error that names the value, when a subnet or pool is malformed, a
    /// router lies outside its subnet, the server's address outside every subnet, a boot file
    /// is empty, a reservation lies outside every subnet or at an address no client can have
    /// (the server's, a network or broadcast address) or names a MAC no NIC has (all zero,
    /// multicast), or two reservations share a MAC or an address.
    pub fn new(config: Config) -> Result<Policy, Error> {
        let bad = |reason: String| Err(Error::Config { reason });
        let needs_subnets = matches!(config.mode, Mode::Authoritative | Mode::ReservationsOnly);
        if needs_subnets && config.subnets.is_empty() {
            return bad("at least one subnet is needed to hand out addresses".into());
        }
        if config.mode != Mode::Off && config.server_ip.is_unspecified() {
            return bad("server_ip must be the server's address on the interface".into());
        }
        if config.lease_secs < 60 {
            return bad(format!("lease_secs {} is below 60", config.lease_secs));
        }
        if let Some(ms) = config.ping_probe_ms {
            if ms == 0 {
                return bad(
                    "ping_probe_ms 0 probes nothing; leave it unset to turn probes off".into(),
                );
            }
            // The offer is held for the client while the probe waits; a hold that lapses first
            // could hand the address to someone else.
            if u64::from(ms) >= u64::from(config.offer_hold_secs) * 1000 {
                return bad(format!(
                    "ping_probe_ms {ms} is not below offer_hold_secs {}",
                    config.offer_hold_secs
                ));
            }
        }
        for s in &config.subnets {
            if s.prefix_len > 32 {
                return bad(format!("prefix length {} is above 32", s.prefix_len));
            }
            if let Some(pool) = s.pool {
                if !s.contains(pool.start) || !s.contains(pool.end) {
                    return bad(format!(
                        "pool {}-{} is not inside {}/{}",
                        pool.start, pool.end, s.network, s.prefix_len
                    ));
                }
                let (a, b) = (u32::from(pool.start), u32::from(pool.end));
                if a > b {
                    return bad(format!(
                        "pool {}-{} ends before it starts",
                        pool.start, pool.end
                    ));
                }
                if b - a >= MAX_POOL {
                    return bad(format!(
                        "pool {}-{} holds more than {MAX_POOL} addresses",
                        pool.start, pool.end
                    ));
                }
            }
        }
        for s in &config.subnets {
            if let Some(router) = s.router
                && !s.contains(router)
            {
                return Err(Error::RouterOutsideSubnet {
                    router,
                    subnet: s.net(),
                });
            }
        }
        if needs_subnets && !config.subnets.iter().any(|s| s.contains(config.server_ip)) {
            return Err(Error::ServerOutsideSubnets {
                server_ip: config.server_ip,
            });
        }
        let b = &config.boot;
        for (field, value) in [
            ("bios", &b.bios),
            ("efi_x64", &b.efi_x64),
            ("efi_arm64", &b.efi_arm64),
            ("http_boot_url", &b.http_boot_url),
            ("ipxe_script_url", &b.ipxe_script_url),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Error::EmptyBootFile { field });
            }
        }
        let mut by_mac = HashMap::new();
        let mut by_addr = HashMap::new();
        for (i, r) in config.reservations.iter().enumerate() {
            let bad = |reason: String| {
                Err(Error::BadReservation {
                    mac: r.mac,
                    addr: r.addr,
                    reason,
                })
            };
            if let Some(why) = r.mac.not_unicast() {
                return bad(format!("the MAC {why}"));
            }
            if r.addr == config.server_ip {
                return bad("the address is the server's own".into());
            }
            let subnet = config.subnets.iter().find(|s| s.contains(r.addr));
            if let Some(net) = subnet.map(Subnet::net)
                && let Some(which) = net.special(r.addr)
            {
                return bad(format!("the address is the {which} address of {net}"));
            }
            if needs_subnets && subnet.is_none() {
                return Err(Error::ReservationOutsideSubnets {
                    mac: r.mac,
                    addr: r.addr,
                });
            }
            if by_mac.insert(r.mac, i).is_some() || by_addr.insert(r.addr, i).is_some() {
                return Err(Error::DuplicateReservation {
                    mac: r.mac,
                    addr: r.addr,
                });
            }
        }
        Ok(Policy {
            config,
            by_mac,
            by_addr,
        })
    }

    /// The checked configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The reservation for `mac`, if any.
    pub fn reservation(&self, mac: Mac) -> Option<&Reservation> {
        self.by_mac.get(&mac).map(|&i| &self.config.reservations[i])
    }

    /// The MAC an address is reserved for, if any.
    pub fn reserved_for(&self, addr: Ipv4Addr) -> Option<Mac> {
        self.by_addr
            .get(&addr)
            .map(|&i| self.config.reservations[i].mac)
    }

    /// The index of the subnet that serves a request: the relay's (`giaddr`) or the local one.
    pub(crate) fn subnet_for(&self, giaddr: Ipv4Addr) -> Option<usize> {
        let key = if giaddr.is_unspecified() {
            self.config.server_ip
        } else {
            giaddr
        };
        self.config.subnets.iter().position(|s| s.contains(key))
    }

    /// T1 and T2 in seconds.
    pub(crate) fn timers(&self) -> (u32, u32) {
        let lease = self.config.lease_secs;
        let t1 = self.config.renewal_secs.unwrap_or(lease / 2);
        let t2 = self
            .config
            .rebinding_secs
            .unwrap_or((u64::from(lease) * 7 / 8) as u32);
        (t1, t2)
    }

    /// The TFTP server address handed out.
    pub(crate) fn next_server(&self) -> Ipv4Addr {
        self.config
            .boot
            .next_server
            .unwrap_or(self.config.server_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> Subnet {
        let mut s = Subnet::new(Ipv4Addr::new(10, 0, 0, 0), 24);
        s.pool = Some(Range {
            start: Ipv4Addr::new(10, 0, 0, 100),
            end: Ipv4Addr::new(10, 0, 0, 199),
        });
        s
    }

    fn check(edit: impl FnOnce(&mut Config), ok: bool) {
        let mut c = Config {
            server_ip: Ipv4Addr::new(10, 0, 0, 1),
            subnets: vec![subnet()],
            ..Config::default()
        };
        edit(&mut c);
        let got = Policy::new(c.clone());
        assert_eq!(got.is_ok(), ok, "{c:?}: {:?}", got.err());
    }

    #[test]
    fn validation() {
        check(|_| {}, true);
        check(|c| c.subnets.clear(), false);
        check(
            |c| {
                c.subnets.clear();
                c.mode = Mode::Proxy
            },
            true,
        );
        check(|c| c.server_ip = Ipv4Addr::UNSPECIFIED, false);
        check(|c| c.subnets[0].prefix_len = 33, false);
        check(
            |c| c.subnets[0].pool.as_mut().unwrap().end = Ipv4Addr::new(10, 0, 1, 5),
            false,
        );
        check(
            |c| c.subnets[0].pool.as_mut().unwrap().end = Ipv4Addr::new(10, 0, 0, 50),
            false,
        );
        let r = |mac: &str, a: u8| Reservation {
            mac: mac.parse().unwrap(),
            addr: Ipv4Addr::new(10, 0, 0, a),
            hostname: None,
        };
        check(|c| c.reservations = vec![r("52:54:00:00:00:01", 10)], true);
        check(
            |c| c.reservations = vec![r("52:54:00:00:00:01", 10), r("52:54:00:00:00:02", 10)],
            false,
        );
        check(
            |c| c.reservations = vec![r("52:54:00:00:00:01", 10), r("52:54:00:00:00:01", 11)],
            false,
        );
        check(
            |c| {
                c.reservations = vec![Reservation {
                    addr: Ipv4Addr::new(10, 9, 9, 9),
                    ..r("52:54:00:00:00:01", 0)
                }]
            },
            false,
        );
        // Addresses no client can have, MACs no NIC has.
        for (m, a) in [
            ("52:54:00:00:00:01", 1),
            ("52:54:00:00:00:01", 0),
            ("52:54:00:00:00:01", 255),
            ("00:00:00:00:00:00", 10),
            ("01:00:5e:00:00:01", 10),
            ("ff:ff:ff:ff:ff:ff", 10),
        ] {
            let got = Policy::new(Config {
                server_ip: Ipv4Addr::new(10, 0, 0, 1),
                subnets: vec![subnet()],
                reservations: vec![r(m, a)],
                ..Config::default()
            });
            assert!(
                matches!(got, Err(Error::BadReservation { .. })),
                "{m} {a}: {got:?}"
            );
        }
        let err = |edit: fn(&mut Config)| {
            let mut c = Config {
                server_ip: Ipv4Addr::new(10, 0, 0, 1),
                subnets: vec![subnet()],
                ..Config::default()
            };
            edit(&mut c);
            Policy::new(c).unwrap_err().to_string()
        };
        assert_eq!(
            err(|c| c.server_ip = Ipv4Addr::new(10, 9, 0, 1)),
            "server address 10.9.0.1 is outside every configured subnet (list the server's own \
             subnet, without a pool if it hands out nothing locally)"
        );
        assert_eq!(
            err(|c| c.subnets[0].router = Some(Ipv4Addr::new(10, 0, 1, 1))),
            "router 10.0.1.1 is outside its subnet 10.0.0.0/24"
        );
        assert_eq!(
            err(|c| c.boot.bios = Some(String::new())),
            "boot.bios is empty; leave it unset to send no boot file"
        );
        assert_eq!(
            err(|c| c.reservations = vec![Reservation {
                mac: "52:54:00:00:00:01".parse().unwrap(),
                addr: Ipv4Addr::new(10, 0, 0, 255),
                hostname: None,
            }]),
            "reservation for 52:54:00:00:00:01 at 10.0.0.255: the address is the broadcast \
             address of 10.0.0.0/24"
        );
        check(|c| c.lease_secs = 5, false);
        check(|c| c.ping_probe_ms = Some(300), true);
        check(|c| c.ping_probe_ms = Some(0), false);
        check(|c| c.ping_probe_ms = Some(60_000), false);
    }

    #[test]
    fn ping_probe_is_off_unless_configured() {
        assert_eq!(Config::default().ping_probe_ms, None);
        let c: Config = serde_json::from_str(r#"{"server_ip":"10.0.0.1"}"#).unwrap();
        assert_eq!(c.ping_probe_ms, None);
        let c: Config =
            serde_json::from_str(r#"{"server_ip":"10.0.0.1","ping_probe_ms":250}"#).unwrap();
        assert_eq!(c.ping_probe_ms, Some(250));
    }

    #[test]
    fn subnet_math() {
        let s = subnet();
        assert_eq!(s.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 0, 0, 255));
        assert!(s.contains(Ipv4Addr::new(10, 0, 0, 7)));
        assert!(!s.contains(Ipv4Addr::new(10, 0, 1, 7)));
        assert_eq!(
            Subnet::new(Ipv4Addr::UNSPECIFIED, 0).mask(),
            Ipv4Addr::UNSPECIFIED
        );
        assert_eq!(
            Subnet::new(Ipv4Addr::UNSPECIFIED, 32).mask(),
            Ipv4Addr::BROADCAST
        );
    }
}
