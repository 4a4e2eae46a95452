//! The crate's one error type.

use std::net::Ipv4Addr;

use pxe_stack::Mac;

/// Everything that can go wrong while building, rendering, parsing or applying libvirt XML.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name (cluster, domain, node, network or bridge) is not acceptable where it is used.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidName {
        /// Which setting held the name.
        field: &'static str,
        /// The rejected name.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A MAC address cannot identify a host (multicast or all zeros).
    #[error("invalid MAC address {mac} for {host}: {reason}")]
    InvalidMac {
        /// The node or network the MAC was given for.
        host: String,
        /// The rejected address.
        mac: Mac,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A MAC prefix is not one to five colon-separated hex octets, or is multicast.
    #[error("invalid MAC prefix {input:?}: expected 1 to 5 unicast hex octets such as 52:54:00")]
    InvalidMacPrefix {
        /// The rejected input.
        input: String,
    },
    /// A derived MAC does not fit in the bytes the prefix leaves free.
    #[error("MAC prefix {prefix} leaves too few bytes for host offset {offset} ({host})")]
    MacPrefixTooLong {
        /// The prefix, as given.
        prefix: String,
        /// The host's offset in the subnet, which the MAC suffix encodes.
        offset: u32,
        /// The node the MAC was derived for.
        host: String,
    },
    /// The network's address and prefix length do not describe a usable IPv4 subnet.
    #[error("invalid subnet {address}/{prefix}: {reason}")]
    InvalidSubnet {
        /// The host-side address.
        address: Ipv4Addr,
        /// The prefix length.
        prefix: u8,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// The DHCP range is reversed, outside the subnet or covers the gateway.
    #[error("invalid DHCP range {start}-{end}: {reason}")]
    InvalidDhcpRange {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A host address lies outside the network's subnet, or is its network, broadcast or
    /// gateway address.
    #[error("address {ip} of {host} is not a usable host address in {network}/{prefix}")]
    AddressOutsideNetwork {
        /// The node (or setting) the address was given for.
        host: String,
        /// The rejected address.
        ip: Ipv4Addr,
        /// The network address.
        network: Ipv4Addr,
        /// The prefix length.
        prefix: u8,
    },
    /// A reserved host address lies inside the dynamic DHCP range, where dnsmasq could lease it
    /// to another client.
    #[error("address {ip} of {host} lies inside the DHCP range {start}-{end}")]
    AddressInDhcpRange {
        /// The node the address was given for.
        host: String,
        /// The rejected address.
        ip: Ipv4Addr,
        /// First address of the range.
        start: Ipv4Addr,
        /// Last address of the range.
        end: Ipv4Addr,
    },
    /// Two nodes share a MAC address.
    #[error("MAC address {mac} is used by both {first} and {second}")]
    DuplicateMac {
        /// The shared address.
        mac: Mac,
        /// The first node using it.
        first: String,
        /// The second node using it.
        second: String,
    },
    /// Two nodes share a name.
    #[error("node name {name:?} is used twice")]
    DuplicateName {
        /// The shared name.
        name: String,
    },
    /// Two nodes share an address.
    #[error("address {ip} is used by both {first} and {second}")]
    DuplicateAddress {
        /// The shared address.
        ip: Ipv4Addr,
        /// The first node using it.
        first: String,
        /// The second node using it.
        second: String,
    },
    /// A VM was given no memory.
    #[error("memory size of domain {domain:?} is zero")]
    ZeroMemory {
        /// The domain name.
        domain: String,
    },
    /// A VM was given no virtual CPUs.
    #[error("vcpu count of domain {domain:?} is zero")]
    ZeroVcpus {
        /// The domain name.
        domain: String,
    },
    /// A path handed to the VM (image, Ignition) is empty, relative or holds a comma, which
    /// QEMU's `-fw_cfg name=...,file=...` syntax cannot carry.
    #[error("invalid {field} path {path:?}: {reason}")]
    InvalidPath {
        /// Which setting held the path.
        field: &'static str,
        /// The rejected path.
        path: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// The network's `<bootp file server>` holds a value libvirt's schema or the dnsmasq
    /// configuration it writes cannot carry.
    #[error("invalid bootp {field} {value:?}: {reason}")]
    InvalidBootp {
        /// `file` or `server`.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// A UUID is not in the 8-4-4-4-12 hex form.
    #[error("invalid {field} UUID {value:?}: expected 8-4-4-4-12 hex digits")]
    InvalidUuid {
        /// Which setting held the UUID.
        field: &'static str,
        /// The rejected value.
        value: String,
    },
    /// quick-xml could not render the model.
    #[error("cannot render <{root}>")]
    Render {
        /// The document's root element.
        root: &'static str,
        /// The serializer's error.
        #[source]
        source: quick_xml::SeError,
    },
    /// A document is not well-formed XML or does not fit the model.
    #[error("cannot parse <{root}>: {message}")]
    Parse {
        /// The expected root element.
        root: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A document has another root element than the one asked for.
    #[error("expected a <{expected}> document, found <{found}>")]
    WrongRoot {
        /// The expected root element.
        expected: &'static str,
        /// The root element found.
        found: String,
    },
    /// A domain is running and the caller did not allow replacing it.
    #[cfg(feature = "libvirt")]
    #[error("domain {name:?} is running; refusing to redefine it without replace_running")]
    DomainRunning {
        /// The domain name.
        name: String,
    },
    /// A libvirt call failed.
    #[cfg(feature = "libvirt")]
    #[error("libvirt {op} of {name:?} failed")]
    Libvirt {
        /// The operation, e.g. `define network`.
        op: &'static str,
        /// The object name (or connection URI for `open`).
        name: String,
        /// libvirt's error.
        #[source]
        source: virt::error::Error,
    },
}
