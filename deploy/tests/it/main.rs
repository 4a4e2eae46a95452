//! Integration tests: the sample plan, `open_bmc` and the bootstrap VM against real peers
//! (ipmi_sim, sushy-emulator, libvirt's test driver), and (feature `lab`, root only) the lab
//! and whole deployments in it; (feature `run`, root) the deployment's DNS in a namespace, and
//! IPv6-only and dual-stack deployments against dhclient -6, udhcpc, rdisc6, curl and tftp.

mod architecture;
#[cfg(feature = "run")]
mod dns;
#[cfg(feature = "run")]
mod eras;
#[cfg(feature = "run")]
mod ipv6;
#[cfg(feature = "lab")]
mod lab;
#[cfg(feature = "run")]
mod peers;
mod plan;
#[cfg(feature = "run")]
mod signatures;
#[cfg(feature = "postgres")]
mod state;
