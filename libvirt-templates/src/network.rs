//! The `<network>` document: a libvirt virtual network with NAT, DNS records and DHCP.

use std::net::{IpAddr, Ipv4Addr};

use pxe_stack::Mac;
use serde::{Deserialize, Serialize};

use crate::xml::{OnOff, YesNo};

/// A libvirt `<network>` definition (formatnetwork.rst), limited to what a cluster network uses.
///
/// Fields follow libvirt's own element order, so a rendered document reads like `virsh net-dumpxml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// `<name>`: unique per libvirt connection.
    pub name: String,
    /// `<uuid>`: a fixed UUID lets a second define update the network instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `<forward>`: how the network reaches the outside (absent: an isolated network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// `<bridge>`: the host bridge device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Bridge>,
    /// `<mac>`: the bridge's own MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
    /// `<domain>`: the DNS domain handed to DHCP clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DnsDomain>,
    /// `<dns>`: extra DNS records served by the network's dnsmasq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// `<ip>`: one per address family/subnet, with the DHCP settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<Ip>,
}

/// `<forward mode dev>` with an optional `<nat>` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// `mode`: absent means libvirt's default, NAT.
    #[serde(rename = "@mode", default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ForwardMode>,
    /// `dev`: restrict forwarding to one host interface.
    #[serde(rename = "@dev", default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// `<nat>`: address and port ranges used for masquerading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<Nat>,
    /// `<interface dev>`: the pool of host interfaces to forward through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interface: Vec<ForwardInterface>,
}

/// The `mode` of a `<forward>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ForwardMode {
    /// Masquerade through the host (libvirt's default).
    Nat,
    /// Route without NAT.
    Route,
    /// Route without any firewall rules.
    Open,
    /// Use an existing host bridge.
    Bridge,
    /// macvtap private mode.
    Private,
    /// macvtap VEPA mode.
    Vepa,
    /// macvtap passthrough mode.
    Passthrough,
    /// PCI device assignment.
    Hostdev,
}

/// `<nat>` inside `<forward mode='nat'>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat {
    /// `<address start end>`: the public address range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressRange>,
    /// `<port start end>`: the source port range, e.g. 1024-65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortRange>,
}

/// `<address start end>` inside `<nat>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRange {
    /// First address.
    #[serde(rename = "@start")]
    pub start: Ipv4Addr,
    /// Last address.
    #[serde(rename = "@end")]
    pub end: Ipv4Addr,
}

/// `<port start end>` inside `<nat>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    #[serde(rename = "@start")]
    pub start: u16,
    /// Last port.
    #[serde(rename = "@end")]
    pub end: u16,
}

/// `<interface dev>` inside `<forward>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardInterface {
    /// Host interface name.
    #[serde(rename = "@dev")]
    pub dev: String,
}

/// `<bridge name stp delay>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    /// The bridge device name (at most 15 bytes on Linux).
    #[serde(rename = "@name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Spanning tree protocol.
    #[serde(rename = "@stp", default, skip_serializing_if = "Option::is_none")]
    pub stp: Option<OnOff>,
    /// Forward delay in seconds.
    #[serde(rename = "@delay", default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
}

/// `<mac address>`, used by networks and by domain interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacAddress {
    /// The address.
    #[serde(rename = "@address")]
    pub address: Mac,
}

/// `<domain name localOnly>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsDomain {
    /// The DNS domain, e.g. `ocp4.example.com`.
    #[serde(rename = "@name")]
    pub name: String,
    /// `yes`: dnsmasq answers for this domain itself and never forwards its names upstream.
    #[serde(
        rename = "@localOnly",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub local_only: Option<YesNo>,
}

/// `<dns>`: records served by the network's dnsmasq.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// `enable`: `no` turns the DNS server off.
    #[serde(rename = "@enable", default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<YesNo>,
    /// `forwardPlainNames`: whether names without a dot go upstream.
    #[serde(
        rename = "@forwardPlainNames",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub forward_plain_names: Option<YesNo>,
    /// `<forwarder addr|domain>`: upstream servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarder: Vec<Forwarder>,
    /// `<txt name value>` records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txt: Vec<Txt>,
    /// `<host ip>` address records, each with one or more names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<DnsHost>,
    /// `<srv>` service records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub srv: Vec<Srv>,
}

/// `<forwarder addr domain>` inside `<dns>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarder {
    /// Upstream server address.
    #[serde(rename = "@addr", default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<IpAddr>,
    /// Only forward names under this domain.
    #[serde(rename = "@domain", default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `<txt name value>` inside `<dns>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txt {
    /// Record name.
    #[serde(rename = "@name")]
    pub name: String,
    /// Record text.
    #[serde(rename = "@value")]
    pub value: String,
}

/// `<host ip><hostname>...</hostname></host>` inside `<dns>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsHost {
    /// The address every name resolves to.
    #[serde(rename = "@ip")]
    pub ip: IpAddr,
    /// The names (`<hostname>` elements), fully qualified or short.
    #[serde(default)]
    pub hostname: Vec<String>,
}

/// `<srv service protocol domain target port priority weight>` inside `<dns>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Srv {
    /// Service name without the leading underscore, e.g. `etcd-server-ssl`.
    #[serde(rename = "@service")]
    pub service: String,
    /// `tcp` or `udp`, without the leading underscore.
    #[serde(rename = "@protocol")]
    pub protocol: String,
    /// Domain the record lives in.
    #[serde(rename = "@domain", default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Target host name.
    #[serde(rename = "@target", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Target port.
    #[serde(rename = "@port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Priority (lower is preferred).
    #[serde(rename = "@priority", default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Weight among records of equal priority.
    #[serde(rename = "@weight", default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
}

/// `<ip family address netmask|prefix>` with its DHCP settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ip {
    /// `ipv4` or `ipv6`; absent means IPv4.
    #[serde(rename = "@family", default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// The host's own address on the network (the guests' gateway).
    #[serde(rename = "@address")]
    pub address: IpAddr,
    /// Dotted netmask (IPv4 only).
    #[serde(rename = "@netmask", default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<Ipv4Addr>,
    /// Prefix length, the alternative to `netmask`.
    #[serde(rename = "@prefix", default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u8>,
    /// `<tftp root>`: dnsmasq's built-in TFTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tftp: Option<Tftp>,
    /// `<dhcp>`: dynamic range, reservations and boot file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<Dhcp>,
}

/// The `family` of an `<ip>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// `<tftp root>` inside `<ip>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tftp {
    /// Directory served over TFTP.
    #[serde(rename = "@root")]
    pub root: String,
}

/// `<dhcp>` inside `<ip>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dhcp {
    /// `<range start end>`: dynamic pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub range: Vec<DhcpRange>,
    /// `<host mac name ip>`: reservations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<DhcpHost>,
    /// `<bootp file server>`: the boot file handed to PXE clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootp: Option<Bootp>,
}

/// `<range start end>` inside `<dhcp>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpRange {
    /// First dynamic address.
    #[serde(rename = "@start")]
    pub start: IpAddr,
    /// Last dynamic address.
    #[serde(rename = "@end")]
    pub end: IpAddr,
}

/// `<host mac name ip>` inside `<dhcp>`: a reservation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpHost {
    /// The client's MAC (IPv4 reservations).
    #[serde(rename = "@mac", default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// The DHCPv6 client id (IPv6 reservations).
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The host name given to the client.
    #[serde(rename = "@name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The reserved address.
    #[serde(rename = "@ip", default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

/// `<bootp file server>` inside `<dhcp>`.
///
/// [`Bootp::check`] (run by [`Network::to_xml`] and [`ClusterSpec::build`](crate::ClusterSpec::build))
/// refuses values libvirt cannot take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootp {
    /// The boot file name (DHCP `file` field), e.g. `pxelinux.0` or an iPXE URL: not empty,
    /// no control characters (libvirt's schema refuses a newline), no whitespace, `,` or `"`
    /// (libvirt writes it into dnsmasq's `dhcp-boot=file,,server`).
    #[serde(rename = "@file")]
    pub file: String,
    /// The next server (TFTP host), an IPv4 address (libvirt parses it as one; `<bootp>` is
    /// IPv4 only); absent means the network's own address.
    #[serde(rename = "@server", default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl Bootp {
    /// Checks the file name and server.
    ///
    /// ```
    /// use libvirt_templates::{Bootp, Error};
    ///
    /// let ok = Bootp { file: "http://192.168.126.1/boot.ipxe".into(), server: Some("192.168.126.1".into()) };
    /// assert!(ok.check().is_ok());
    /// let bad = Bootp { file: "pxelinux.0\nx".into(), server: None };
    /// assert!(matches!(bad.check(), Err(Error::InvalidBootp { field: "file", .. })));
    /// let bad = Bootp { file: "pxelinux.0".into(), server: Some("tftp.example.com".into()) };
    /// assert!(matches!(bad.check(), Err(Error::InvalidBootp { field: "server", .. })));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidBootp`](crate::Error::InvalidBootp) naming the field and the rule.
    pub fn check(&self) -> Result<(), crate::Error> {
        let file = |reason| crate::Error::InvalidBootp {
            field: "file",
            value: self.file.clone(),
            reason,
        };
        if self.file.is_empty() {
            return Err(file("the boot file name is empty"));
        }
        if self.file.chars().any(char::is_control) {
            return Err(file(
                "a control character (newline, NUL, ...) does not fit libvirt's schema",
            ));
        }
        if self
            .file
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == '"')
        {
            return Err(file(
                "whitespace, ',' and '\"' break the dnsmasq configuration libvirt writes",
            ));
        }
        if let Some(server) = &self.server
            && server.parse::<std::net::Ipv4Addr>().is_err()
        {
            return Err(crate::Error::InvalidBootp {
                field: "server",
                value: server.clone(),
                reason: "expected an IPv4 address",
            });
        }
        Ok(())
    }
}

impl Network {
    /// Renders the network as an indented XML document.
    ///
    /// # Errors
    /// [`Error::InvalidBootp`](crate::Error::InvalidBootp) if a `<bootp>` fails
    /// [`Bootp::check`]; [`Error::Render`](crate::Error::Render) if serde rejects a value (in
    /// practice: never for this model).
    pub fn to_xml(&self) -> Result<String, crate::Error> {
        for bootp in self
            .ip
            .iter()
            .filter_map(|ip| ip.dhcp.as_ref()?.bootp.as_ref())
        {
            bootp.check()?;
        }
        crate::xml::render("network", self)
    }

    /// Parses a `<network>` document; elements and attributes the model does not cover are
    /// listed in [`Parsed::ignored`](crate::Parsed::ignored) rather than failing the parse.
    ///
    /// # Errors
    /// [`Error::Parse`](crate::Error::Parse) for malformed XML or a value of the wrong type.
    pub fn from_xml(xml: &str) -> Result<crate::Parsed<Network>, crate::Error> {
        crate::xml::parse("network", xml)
    }
}
