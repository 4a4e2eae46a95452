//! Power and boot-device control of bare-metal hosts through their BMCs, over IPMI, Redfish
//! or libvirt, that never takes a BMC's word for it: every change is read back.
//!
//! A deployment needs two things from each host's BMC: "boot from the network next time" and
//! "power on". This crate does both, bounded in time, with typed errors, for one host or for
//! dozens at once.
//!
//! # Key types
//!
//! - [`Bmc`]: the one async trait: [`power_status`](Bmc::power_status),
//!   [`power`](Bmc::power) (on, off, soft off, cycle, reset; waits until the state settles),
//!   [`set_boot`](Bmc::set_boot) (device, once or persistent, legacy or UEFI; read back and
//!   checked with [`check_boot`]) and [`boot`](Bmc::boot).
//! - Drivers: [`Ipmi`] (RMCP+ cipher suites 17 and 3, IPMI 1.5 fallback), [`Redfish`],
//!   [`Libvirt`] (VMs without a BMC).
//! - [`Policy`]: per-request timeout, retries with exponential backoff, settle time.
//!   A silent BMC ends in [`Error::Timeout`] within [`Policy::unreachable_bound`] per request.
//! - [`Error`]: unreachable ([`Error::Timeout`]), [`Error::Authentication`],
//!   [`Error::Unsupported`], [`Error::Refused`] (with the IPMI completion code or HTTP status
//!   as a [`Refusal`]), and [`Error::NotApplied`] when the read-back disagrees.
//! - [`for_each_host`]: run an operation over many hosts with a concurrency bound.
//!
//! # Example
//!
//! Any driver behind `dyn Bmc`; here a toy in-memory one so that the example runs anywhere:
//!
//! ```
//! use std::sync::Mutex;
//! use bmc_power::{Bmc, BmcFuture, BootOverride, BootDevice, PowerAction, PowerState};
//!
//! #[derive(Default)]
//! struct Toy(Mutex<(bool, Option<BootOverride>)>);
//!
//! impl Bmc for Toy {
//!     fn power_status(&self) -> BmcFuture<'_, PowerState> {
//!         let on = self.0.lock().unwrap().0;
//!         Box::pin(async move { Ok(if on { PowerState::On } else { PowerState::Off }) })
//!     }
//!     fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
//!         self.0.lock().unwrap().0 = action.expected_state() == PowerState::On;
//!         self.power_status()
//!     }
//!     fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
//!         self.0.lock().unwrap().1 = Some(boot);
//!         self.boot()
//!     }
//!     fn boot(&self) -> BmcFuture<'_, BootOverride> {
//!         let b = self.0.lock().unwrap().1.unwrap_or(BootOverride::once(BootDevice::None));
//!         Box::pin(async move { Ok(b) })
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let hosts: Vec<Box<dyn Bmc>> = (0..20).map(|_| Box::new(Toy::default()) as _).collect();
//! // PXE once, then power on: 8 hosts in flight at a time.
//! let results = bmc_power::for_each_host(0..hosts.len(), 8, |i| {
//!     let bmc = &hosts[i];
//!     async move {
//!         bmc.set_boot(BootOverride::once(BootDevice::Pxe)).await?;
//!         bmc.power(PowerAction::On).await
//!     }
//! })
//! .await;
//! assert!(results.iter().all(|(_, r)| matches!(r, Ok(PowerState::On))));
//! # });
//! ```
//!
//! With a real BMC (feature `ipmi`):
//!
//! ```no_run
//! # #[cfg(feature = "ipmi")]
//! # async fn f() -> Result<(), bmc_power::Error> {
//! use bmc_power::{Bmc, BootOverride, BootDevice, Credentials, Ipmi, IpmiConfig, PowerAction};
//! let bmc = Ipmi::new(IpmiConfig {
//!     address: "10.0.0.5".into(),
//!     credentials: Credentials { username: "admin".into(), password: "secret".into(), kg: None },
//!     ..IpmiConfig::default()
//! })?;
//! bmc.set_boot(BootOverride::once(BootDevice::Pxe)).await?; // checked by read-back
//! bmc.power(PowerAction::On).await?; // returns once the chassis reports on
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! All default-off; without any, the crate is the trait, the types, the read-back policy and
//! [`for_each_host`], with no runtime.
//!
//! - `ipmi`: a sans-IO RMCP+ / RMCP core (packet codec, RMCP+ handshake state machine,
//!   crypto from RustCrypto) and the tokio UDP driver [`Ipmi`] on it (retransmission with backoff, late and duplicate
//!   reply filtering, Get Channel Cipher Suites with suite 17 preferred, Open Session probing
//!   17 then 3 when the BMC does not list its suites, IPMI 1.5 MD5/straight/none).
//! - `redfish`: [`Redfish`] on reqwest with rustls and the ring provider; custom CA,
//!   certificate checks skipped only with [`Tls::InsecureSkipVerify`].
//! - `libvirt`: [`Libvirt`] on the `virt` crate (needs libvirt-dev to build).
//!
//! # Read-back policy
//!
//! Boot overrides: [`check_boot`]: the device must match; the mode must match, and a mode
//! asked of a BMC that does not report one is [`Error::NotVerifiable`]; asking for `Once` and
//! reading `Persistent` passes (sushy-tools always reports `Continuous`), the reverse fails.
//! IPMI BMCs that report only the device selector with the "valid" bit clear (OpenIPMI's
//! ipmi_sim) are checked on the device alone, and a mode or persistence asked of them is
//! [`Error::NotVerifiable`]. Power on and off poll the power state until it reaches the
//! target or [`Policy::settle`] runs out.
//!
//! Reset and cycle are verified by the transition: the host seen off (or off before), or a
//! changed Redfish `LastResetTime`, then on. A host that shows neither within
//! [`Policy::settle`] is [`Error::NotVerifiable`] (IPMI has no reset counter, nor has every
//! Redfish service), or [`Error::NotApplied`] when a `LastResetTime` stayed put. Never
//! "verified" on the final state alone.
//!
//! # Strict replies and safe retries
//!
//! A reply the driver cannot parse fully (truncated JSON, a system record without the fields
//! the operation needs) is [`Error::Protocol`], and nothing is sent after it in the same
//! operation. Reads are retried on silence. Actions are not resent blindly: a Redfish reset or
//! boot override that goes unanswered is followed by a read, and sent again only when that
//! read shows it was not applied (a reset without a `LastResetTime` is never resent); an IPMI
//! reset, cycle or soft off is sent once, while power on/off and boot flags (idempotent) are
//! retransmitted like reads.
//!
//! # What this crate does not do
//!
//! - No serial-over-LAN, sensors, SEL, virtual media, firmware or BIOS settings.
//! - No IPMI suites other than 3 and 17 (no MD5-based RAKP, no RC4), no MD2 auth for IPMI 1.5,
//!   no IPMB bridging to other controllers; IPMI 1.5 reply auth codes are not verified.
//! - libvirt: no one-time boot (libvirt has none; the inactive XML change lasts until changed)
//!   and no switching between BIOS and UEFI firmware.
//! - Redfish: no vendor OEM extensions. No peer here offers a SessionService (sushy-tools
//!   answers the login with 401, which `Auto` takes as "use basic auth"), so session login
//!   is tested against our own fake service only. No trust-on-first-use storage: the caller
//!   keeps the fingerprint.
//! - IPMI: no reset counter exists, so an IPMI reset of a host that stays on is always
//!   [`Error::NotVerifiable`]; a wrong IPMI 1.5 password is inferred from a BMC that answers
//!   other requests but drops the activation (IPMI 1.5 BMCs do not say so).
#![warn(missing_docs)]
// The crate docs link the feature-gated drivers; without every feature those links dangle.
#![cfg_attr(
    not(all(feature = "ipmi", feature = "redfish", feature = "libvirt")),
    allow(rustdoc::broken_intra_doc_links)
)]

mod bmc;
mod error;
#[cfg(feature = "ipmi")]
mod ipmi;
#[cfg(feature = "libvirt")]
mod libvirt;
#[cfg(feature = "redfish")]
mod redfish;
#[cfg(feature = "redfish")]
mod tls;
mod types;

#[cfg(feature = "ipmi")]
pub use ipmi::{
    CipherSuite, Config as IpmiConfig, Credentials, Ipmi, Negotiated, Version as IpmiVersion,
};
#[cfg(feature = "libvirt")]
pub use libvirt::{Config as LibvirtConfig, Libvirt};
#[cfg(feature = "redfish")]
pub use redfish::{Auth as RedfishAuth, Config as RedfishConfig, Redfish};
#[cfg(feature = "redfish")]
pub use tls::Tls;
pub use {
    bmc::{Bmc, BmcFuture, check_boot, for_each_host},
    error::{Error, PresentedCertificate, Refusal, Result},
    types::{
        BadFingerprint, BootDevice, BootMode, BootOverride, Fingerprint, Persistence, Policy,
        PowerAction, PowerState,
    },
};
