//! The IPMI commands this crate sends, as pure encode/decode functions.

use crate::error::{Error, Result};
use crate::types::{BootDevice, BootMode, BootOverride, Persistence, PowerAction, PowerState};

/// (netfn, cmd) pairs.
pub(crate) mod cmd {
    pub(crate) const GET_CHASSIS_STATUS: (u8, u8) = (0x00, 0x01);
    pub(crate) const CHASSIS_CONTROL: (u8, u8) = (0x00, 0x02);
    pub(crate) const SET_BOOT_OPTIONS: (u8, u8) = (0x00, 0x08);
    pub(crate) const GET_BOOT_OPTIONS: (u8, u8) = (0x00, 0x09);
    pub(crate) const GET_CHANNEL_AUTH_CAPS: (u8, u8) = (0x06, 0x38);
    pub(crate) const GET_SESSION_CHALLENGE: (u8, u8) = (0x06, 0x39);
    pub(crate) const SET_SESSION_PRIVILEGE: (u8, u8) = (0x06, 0x3B);
    pub(crate) const CLOSE_SESSION: (u8, u8) = (0x06, 0x3C);
    pub(crate) const GET_CHANNEL_CIPHER_SUITES: (u8, u8) = (0x06, 0x54);
}

/// Chassis Control data byte for an action (`None` for soft off handled the same way).
pub(crate) fn chassis_control(action: PowerAction) -> u8 {
    match action {
        PowerAction::Off => 0x00,
        PowerAction::On => 0x01,
        PowerAction::Cycle => 0x02,
        PowerAction::Reset => 0x03,
        PowerAction::SoftOff => 0x05,
    }
}

/// Get Chassis Status reply data -> power state (byte 1 bit 0).
pub(crate) fn chassis_status(data: &[u8]) -> Result<PowerState> {
    let b = data
        .first()
        .ok_or_else(|| Error::protocol("get chassis status reply is empty"))?;
    Ok(if b & 0x01 != 0 {
        PowerState::On
    } else {
        PowerState::Off
    })
}

/// Set System Boot Options, parameter 5 (boot flags): the six request data bytes.
pub(crate) fn set_boot_flags(boot: &BootOverride) -> Result<[u8; 6]> {
    let device = match boot.device {
        BootDevice::None => 0x00,
        BootDevice::Pxe => 0x04,
        BootDevice::Disk => 0x08,
        BootDevice::Cdrom => 0x14,
        BootDevice::BiosSetup => 0x18,
        BootDevice::UefiHttp => {
            return Err(Error::Unsupported {
                operation: "set boot device",
                message: "ipmi has no uefi http boot device".into(),
            });
        }
    };
    let mut d1 = 0x80; // valid
    if boot.persistence == Persistence::Persistent {
        d1 |= 0x40;
    }
    // No mode asked for: the legacy bit pattern, which every BMC accepts.
    if boot.mode == Some(BootMode::Uefi) {
        d1 |= 0x20;
    }
    Ok([0x05, d1, device, 0, 0, 0])
}

/// Get System Boot Options request for parameter 5.
pub(crate) const GET_BOOT_FLAGS: [u8; 3] = [0x05, 0x00, 0x00];

/// Get System Boot Options reply for parameter 5 -> the boot override, and whether the
/// "boot flags valid" bit was set.
///
/// Some BMCs (OpenIPMI's ipmi_sim) report only the device selector and leave byte 1 at zero;
/// others clear the valid bit once the one-time boot has happened. With the bit clear, the
/// device still comes from the selector, the mode is reported as unknown and the persistence
/// as `Once`; the caller learns from the flag that only the device is meaningful.
pub(crate) fn boot_flags(data: &[u8]) -> Result<(BootOverride, bool)> {
    // version, parameter selector (bit 7 = invalid/locked), then the five data bytes.
    if data.len() < 4 || data[1] & 0x7F != 0x05 {
        return Err(Error::protocol("get boot options reply is not parameter 5"));
    }
    let (d1, d2) = (data[2], data[3]);
    let valid = d1 & 0x80 != 0;
    let device = match (d2 >> 2) & 0x0F {
        0x0 => BootDevice::None,
        0x1 => BootDevice::Pxe,
        0x2 | 0x3 => BootDevice::Disk,
        0x5 => BootDevice::Cdrom,
        0x6 => BootDevice::BiosSetup,
        other => {
            return Err(Error::Unsupported {
                operation: "get boot device",
                message: format!("boot device selector {other:#x} has no name here"),
            });
        }
    };
    let boot = BootOverride {
        device,
        persistence: if valid && d1 & 0x40 != 0 {
            Persistence::Persistent
        } else {
            Persistence::Once
        },
        mode: valid.then_some(if d1 & 0x20 != 0 {
            BootMode::Uefi
        } else {
            BootMode::Legacy
        }),
    };
    Ok((boot, valid))
}

/// What Get Channel Authentication Capabilities says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthCaps {
    pub(crate) none: bool,
    pub(crate) md2: bool,
    pub(crate) md5: bool,
    pub(crate) straight: bool,
    /// The channel supports IPMI 2.0 (RMCP+) sessions.
    pub(crate) v2: bool,
}

pub(crate) fn auth_caps(data: &[u8]) -> Result<AuthCaps> {
    if data.len() < 4 {
        return Err(Error::protocol(
            "get channel auth capabilities reply truncated",
        ));
    }
    let b = data[1];
    Ok(AuthCaps {
        none: b & 0x01 != 0,
        md2: b & 0x02 != 0,
        md5: b & 0x04 != 0,
        straight: b & 0x10 != 0,
        v2: b & 0x80 != 0 && data[3] & 0x02 != 0,
    })
}

impl AuthCaps {
    /// What the BMC offers, for messages: `ipmi 1.5 auth types none, straight; no ipmi 2.0`.
    pub(crate) fn describe(&self) -> String {
        let names: Vec<&str> = [
            (self.none, "none"),
            (self.md2, "md2"),
            (self.md5, "md5"),
            (self.straight, "straight"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        format!(
            "ipmi 1.5 auth types {}; {}",
            if names.is_empty() {
                "(none listed)".to_string()
            } else {
                names.join(", ")
            },
            if self.v2 {
                "ipmi 2.0 (rmcp+)"
            } else {
                "no ipmi 2.0 (rmcp+)"
            }
        )
    }
}

/// Get Channel Cipher Suites record data (concatenated over list indexes) -> suite ids.
pub(crate) fn cipher_suites(records: &[u8]) -> Vec<u8> {
    let mut ids = Vec::new();
    let mut i = 0;
    while i < records.len() {
        match records[i] {
            0xC0 if i + 1 < records.len() => {
                ids.push(records[i + 1]);
                i += 2;
            }
            0xC1 if i + 2 < records.len() => {
                ids.push(records[i + 1]);
                i += 5;
            }
            _ => i += 1,
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_flags_bits() {
        // CRATES.md 1b: PXE + EFI, once = 0x05 0xA0 0x04 0 0 0.
        let b = BootOverride {
            device: BootDevice::Pxe,
            persistence: Persistence::Once,
            mode: Some(BootMode::Uefi),
        };
        assert_eq!(set_boot_flags(&b).unwrap(), [0x05, 0xA0, 0x04, 0, 0, 0]);
        let cases = [
            (
                BootDevice::Disk,
                Persistence::Persistent,
                BootMode::Legacy,
                0xC0,
                0x08,
            ),
            (
                BootDevice::Cdrom,
                Persistence::Once,
                BootMode::Legacy,
                0x80,
                0x14,
            ),
            (
                BootDevice::BiosSetup,
                Persistence::Persistent,
                BootMode::Uefi,
                0xE0,
                0x18,
            ),
        ];
        for (device, persistence, mode, d1, d2) in cases {
            let b = BootOverride {
                device,
                persistence,
                mode: Some(mode),
            };
            let bytes = set_boot_flags(&b).unwrap();
            assert_eq!((bytes[1], bytes[2]), (d1, d2));
            // Read-back of what we set gives the same value.
            let reply = [0x01, 0x05, bytes[1], bytes[2], 0, 0, 0];
            assert_eq!(boot_flags(&reply).unwrap(), (b, true));
        }
        assert!(set_boot_flags(&BootOverride::once(BootDevice::UefiHttp)).is_err());
        assert_eq!(
            boot_flags(&[1, 5, 0, 0, 0, 0, 0]).unwrap().0.device,
            BootDevice::None
        );
        // ipmi_sim: only the selector, flags byte zero.
        let (b, valid) = boot_flags(&[1, 5, 0, 0x04, 0, 0, 0]).unwrap();
        assert_eq!((b.device, b.mode, valid), (BootDevice::Pxe, None, false));
        assert!(boot_flags(&[1, 4]).is_err());
    }

    #[test]
    fn cipher_suite_records() {
        // Standard records: C0 id auth integ conf (ipmitool "channel getciphers" layout).
        let r = [0xC0, 0x03, 0x01, 0x41, 0x81, 0xC0, 0x11, 0x03, 0x44, 0x81];
        assert_eq!(cipher_suites(&r), vec![3, 17]);
    }
}
