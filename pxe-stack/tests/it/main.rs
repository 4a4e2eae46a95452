//! Integration tests: each server against real clients. DHCP inside network namespaces the tests
//! create (udhcpc, dhclient, dhclient -6 direct and through dhcrelay -6, dnsmasq, QEMU's iPXE and OVMF; two servers sharing a real PostgreSQL, checked with tcpdump), TFTP (tftp-hpa, atftp, curl) and
//! HTTP (curl) on 127.0.0.1, DNS (dig) inside a network namespace.

#[cfg(any(
    feature = "dhcp",
    feature = "dhcp6",
    feature = "http",
    feature = "tftp",
    feature = "dns"
))]
mod common;
#[cfg(feature = "dhcp")]
mod dhcp;
#[cfg(feature = "dhcp6")]
mod dhcp6;
#[cfg(feature = "postgres")]
mod dhcp_pg;
#[cfg(feature = "dns")]
mod dns;
#[cfg(all(feature = "http", feature = "tftp"))]
mod files;
#[cfg(feature = "http")]
mod http;
#[cfg(any(feature = "http", feature = "tftp"))]
mod loopback;
#[cfg(feature = "tftp")]
mod tftp;
