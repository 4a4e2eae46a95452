//! Who is posting: the host's MACs and DMI ids, and the cross-check with its DHCP lease.

use std::net::IpAddr;

use pxe_stack::Mac;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ghw::Hardware;

/// The identity a body claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Usable NIC MACs in body order, without duplicates.
    pub macs: Vec<Mac>,
    /// The SMBIOS system UUID, lowercased, when present and not a placeholder.
    pub uuid: Option<String>,
    /// The system serial number, when present and not a placeholder.
    pub serial: Option<String>,
    /// How many interfaces were skipped (virtual, loopback, or no usable MAC).
    pub skipped: usize,
}

/// Extracts the identity from a body.
///
/// A NIC counts when it is not virtual, not named `lo`, and has a MAC that parses and is neither
/// all-zero nor multicast. Locally administered MACs count: QEMU and many BMC-less lab hosts use
/// them.
///
/// # Errors
/// [`Error::NoUsableMac`] when no NIC qualifies.
pub fn identify(hw: &Hardware) -> Result<Identity, Error> {
    let mut id = Identity::default();
    for nic in hw.network.iter().flat_map(|n| &n.nics) {
        let mac = (nic.is_virtual != Some(true) && nic.name.as_deref() != Some("lo"))
            .then(|| nic.mac_address.as_deref()?.parse::<Mac>().ok())
            .flatten()
            .filter(|m| m.0 != [0; 6] && !m.is_multicast());
        match mac {
            Some(m) if !id.macs.contains(&m) => id.macs.push(m),
            Some(_) => {}
            None => id.skipped += 1,
        }
    }
    if id.macs.is_empty() {
        return Err(Error::NoUsableMac {
            skipped: id.skipped,
        });
    }
    let product = hw.product.as_ref();
    id.uuid = product
        .and_then(|p| p.uuid.as_deref())
        .map(str::to_ascii_lowercase)
        .filter(|u| !is_placeholder_uuid(u));
    id.serial = product
        .and_then(|p| p.serial_number.clone())
        .filter(|s| !is_placeholder_serial(s));
    Ok(id)
}

/// UUIDs that firmware ships unset: all zeros, all ones, and the well-known dummy.
fn is_placeholder_uuid(u: &str) -> bool {
    let hex: String = u.chars().filter(|c| *c != '-').collect();
    hex.chars().all(|c| c == '0')
        || hex.chars().all(|c| c == 'f')
        || u == "03000200-0400-0500-0006-000700080009"
}

/// Serial numbers that firmware ships unset (and what ghw writes when it may not read them).
fn is_placeholder_serial(s: &str) -> bool {
    const JUNK: &[&str] = &[
        "none",
        "not specified",
        "not applicable",
        "to be filled by o.e.m.",
        "default string",
        "system serial number",
        "0",
        "0123456789",
    ];
    JUNK.contains(&s.to_ascii_lowercase().as_str())
}

/// What to do when the sender's DHCP lease does not vouch for the body's MACs.
///
/// The answer is the role's Ignition config, which can carry cluster secrets, so by default a
/// host may not claim to be another: a lease for the sender's address that belongs to a MAC not
/// in the body is refused. A sender without a lease we know of (no DHCP server of ours, or a
/// static address) is accepted with a warning unless [`LeaseCheck::Require`] is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeaseCheck {
    /// Do not look at leases.
    Off,
    /// Record a warning on a mismatch and carry on.
    Warn,
    /// Refuse a mismatch (403); accept an unknown sender with a warning.
    #[default]
    Refuse,
    /// Refuse a mismatch and a sender without a lease (403).
    Require,
}

/// A recoverable oddity noticed while handling a post, kept with the host's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Warning {
    /// No DHCP lease is known for the sender, so its MACs are unverified.
    NoLease {
        /// The sender's address.
        addr: IpAddr,
    },
    /// The sender's lease belongs to a MAC the body does not list ([`LeaseCheck::Warn`]).
    LeaseMismatch {
        /// The sender's address.
        addr: IpAddr,
        /// The MAC holding the lease.
        lease: Mac,
    },
    /// The body's MACs differ from the stored record's (a NIC was added, removed or replaced).
    MacsChanged {
        /// The MACs stored before.
        before: Vec<Mac>,
    },
}

/// Checks the sender's lease against the body and picks the host's primary MAC.
///
/// The primary MAC is the leased one when the body lists it, else the first usable MAC.
///
/// # Errors
/// [`Error::LeaseMismatch`] or [`Error::NoLease`] as the policy says.
pub fn check_lease(
    policy: LeaseCheck,
    id: &Identity,
    addr: IpAddr,
    lease: Option<Mac>,
) -> Result<(Mac, Vec<Warning>), Error> {
    let first = id.macs.first().copied().ok_or(Error::NoUsableMac {
        skipped: id.skipped,
    })?;
    if policy == LeaseCheck::Off {
        return Ok((first, Vec::new()));
    }
    match lease {
        Some(l) if id.macs.contains(&l) => Ok((l, Vec::new())),
        Some(lease) if policy == LeaseCheck::Warn => {
            Ok((first, vec![Warning::LeaseMismatch { addr, lease }]))
        }
        Some(lease) => Err(Error::LeaseMismatch { addr, lease }),
        None if policy == LeaseCheck::Require => Err(Error::NoLease { addr }),
        None => Ok((first, vec![Warning::NoLease { addr }])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghw::{Network, Nic, Product};

    fn nic(name: &str, mac: &str, is_virtual: bool) -> Nic {
        Nic {
            name: Some(name.into()),
            mac_address: Some(mac.into()),
            is_virtual: Some(is_virtual),
            ..Nic::default()
        }
    }

    fn hw(nics: Vec<Nic>) -> Hardware {
        Hardware {
            network: Some(Network { nics }),
            ..Hardware::default()
        }
    }

    #[test]
    fn macs_are_filtered() {
        let id = identify(&hw(vec![
            nic("lo", "00:00:00:00:00:00", false),
            nic("virbr0", "52:54:00:aa:aa:aa", true),
            nic("eno1", "52:54:00:12:34:56", false),
            nic("eno2", "", false),
            nic("eno3", "01:00:5e:00:00:01", false),
            nic("eno4", "00:00:00:00:00:00", false),
            nic("bond0", "52:54:00:12:34:56", false),
            nic("eno5", "zz", false),
            nic("eno6", "B8-2A-72-00-00-01", false),
        ]))
        .unwrap();
        let macs: Vec<String> = id.macs.iter().map(ToString::to_string).collect();
        assert_eq!(macs, ["52:54:00:12:34:56", "b8:2a:72:00:00:01"]);
        assert_eq!(id.skipped, 6);
    }

    #[test]
    fn no_usable_mac() {
        let err = identify(&hw(vec![nic("eth0", "", false)])).unwrap_err();
        assert!(matches!(err, Error::NoUsableMac { skipped: 1 }));
        assert!(matches!(
            identify(&Hardware::default()),
            Err(Error::NoUsableMac { skipped: 0 })
        ));
    }

    #[test]
    fn dmi_placeholders_are_dropped() {
        let mut h = hw(vec![nic("eth0", "52:54:00:00:00:01", false)]);
        let mut p = Product {
            uuid: Some("03000200-0400-0500-0006-000700080009".into()),
            serial_number: Some("To Be Filled By O.E.M.".into()),
            ..Product::default()
        };
        h.product = Some(p.clone());
        let id = identify(&h).unwrap();
        assert_eq!((id.uuid, id.serial), (None, None));
        p.uuid = Some("4C4C4544-0042-3010-8057-B7C04F4E3132".into());
        p.serial_number = Some("7B0WN12".into());
        h.product = Some(p);
        let id = identify(&h).unwrap();
        assert_eq!(
            id.uuid.as_deref(),
            Some("4c4c4544-0042-3010-8057-b7c04f4e3132")
        );
        assert_eq!(id.serial.as_deref(), Some("7B0WN12"));
    }

    #[test]
    fn lease_policy() {
        let a: Mac = "52:54:00:00:00:0a".parse().unwrap();
        let b: Mac = "52:54:00:00:00:0b".parse().unwrap();
        let other: Mac = "52:54:00:00:00:ff".parse().unwrap();
        let id = Identity {
            macs: vec![a, b],
            ..Identity::default()
        };
        let addr: IpAddr = "192.0.2.10".parse().unwrap();
        let check = |p, l| match check_lease(p, &id, addr, l) {
            Ok((m, w)) => format!("{m} {}", w.len()),
            Err(e) => e.status().as_u16().to_string(),
        };
        assert_eq!(check(LeaseCheck::Refuse, Some(b)), "52:54:00:00:00:0b 0");
        assert_eq!(check(LeaseCheck::Refuse, Some(other)), "403");
        assert_eq!(check(LeaseCheck::Refuse, None), "52:54:00:00:00:0a 1");
        assert_eq!(check(LeaseCheck::Warn, Some(other)), "52:54:00:00:00:0a 1");
        assert_eq!(check(LeaseCheck::Require, None), "403");
        assert_eq!(check(LeaseCheck::Require, Some(a)), "52:54:00:00:00:0a 0");
        assert_eq!(check(LeaseCheck::Off, Some(other)), "52:54:00:00:00:0a 0");
    }
}
