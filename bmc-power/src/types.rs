//! Plain data: power states and actions, boot devices and settings, the retry policy.

use std::time::Duration;

/// The chassis power state as the BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Powered on (or, for Redfish, `PoweringOff`: still on).
    On,
    /// Powered off (or, for Redfish, `PoweringOn`: not on yet).
    Off,
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
        })
    }
}

/// A power operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    /// Power on.
    On,
    /// Hard power off (no operating system involvement).
    Off,
    /// Soft off: ask the operating system to shut down (ACPI power button).
    SoftOff,
    /// Power off, then on again.
    Cycle,
    /// Hard reset (the power stays on).
    Reset,
}

impl PowerAction {
    /// The power state the host must reach once the action is done.
    pub fn expected_state(self) -> PowerState {
        match self {
            PowerAction::Off | PowerAction::SoftOff => PowerState::Off,
            PowerAction::On | PowerAction::Cycle | PowerAction::Reset => PowerState::On,
        }
    }
}

impl std::fmt::Display for PowerAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PowerAction::On => "on",
            PowerAction::Off => "off",
            PowerAction::SoftOff => "soft",
            PowerAction::Cycle => "cycle",
            PowerAction::Reset => "reset",
        })
    }
}

/// Where the host boots from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    /// No override: the firmware's own boot order.
    None,
    /// Network boot (PXE).
    Pxe,
    /// UEFI HTTP boot (Redfish `UefiHttp`; IPMI has no such device).
    UefiHttp,
    /// The first hard disk.
    Disk,
    /// CD/DVD (real or virtual media).
    Cdrom,
    /// Stop in the firmware setup screen.
    BiosSetup,
}

impl std::fmt::Display for BootDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootDevice::None => "none",
            BootDevice::Pxe => "pxe",
            BootDevice::UefiHttp => "uefi-http",
            BootDevice::Disk => "disk",
            BootDevice::Cdrom => "cdrom",
            BootDevice::BiosSetup => "bios",
        })
    }
}

/// How long a boot override lasts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// The next boot only.
    #[default]
    Once,
    /// Every boot until changed.
    Persistent,
}

/// Firmware boot mode requested with the override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// Legacy BIOS boot.
    Legacy,
    /// UEFI boot.
    Uefi,
}

/// A boot override: what to set, or what the BMC reports.
///
/// On read-back, `mode` is `None` when the BMC does not report a mode. When setting, `None`
/// leaves the choice to the BMC (IPMI: the legacy bit pattern, which every BMC accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BootOverride {
    /// The device.
    pub device: BootDevice,
    /// Next boot only, or every boot.
    pub persistence: Persistence,
    /// Legacy or UEFI.
    pub mode: Option<BootMode>,
}

impl BootOverride {
    /// Boot `device` once, mode left to the BMC.
    pub fn once(device: BootDevice) -> Self {
        BootOverride {
            device,
            persistence: Persistence::Once,
            mode: None,
        }
    }
}

impl std::fmt::Display for BootOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = match self.persistence {
            Persistence::Once => "once",
            Persistence::Persistent => "persistent",
        };
        write!(f, "{} ({p}", self.device)?;
        match self.mode {
            Some(BootMode::Uefi) => write!(f, ", uefi)"),
            Some(BootMode::Legacy) => write!(f, ", legacy)"),
            None => write!(f, ")"),
        }
    }
}

/// Timeouts, retries and settle times that every driver honours.
///
/// The longest a single call can wait for an unreachable BMC is
/// [`Policy::unreachable_bound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How long to wait for one answer (one UDP datagram, one HTTP request).
    pub timeout: Duration,
    /// How many times to retry (retransmit) after the first attempt when nothing answers.
    pub retries: u32,
    /// The pause before the first retry; doubled after each further retry.
    pub backoff: Duration,
    /// How long to poll for the power state to reach its target after a power action.
    pub settle: Duration,
    /// The pause between two power-state polls.
    pub poll_interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout: Duration::from_secs(2),
            retries: 3,
            backoff: Duration::from_millis(250),
            settle: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl Policy {
    /// The pause before retry number `n` (0-based): `backoff * 2^n`, capped at 30 s.
    pub fn backoff_for(&self, n: u32) -> Duration {
        self.backoff
            .saturating_mul(1u32 << n.min(16))
            .min(Duration::from_secs(30))
    }

    /// An upper bound on the time one request waits on a silent BMC: every attempt's timeout
    /// plus every backoff pause.
    pub fn unreachable_bound(&self) -> Duration {
        let mut total = self.timeout.saturating_mul(self.retries.saturating_add(1));
        for n in 0..self.retries {
            total = total.saturating_add(self.backoff_for(n));
        }
        total
    }
}

/// A SHA-256 certificate fingerprint: pins exactly one TLS certificate.
///
/// Written `sha256:` and 64 hex digits; parsing also takes openssl's form
/// (`openssl x509 -noout -fingerprint -sha256`: `AB:CD:...`, with or without its
/// `sha256 Fingerprint=` prefix) and either case.
///
/// ```
/// let f: bmc_power::Fingerprint =
///     "SHA256 Fingerprint=00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
///         .parse()
///     .unwrap();
/// assert_eq!(f.to_string(), format!("sha256:{}", "00112233445566778899aabbccddeeff".repeat(2)));
/// assert!("sha256:abcd".parse::<bmc_power::Fingerprint>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Why a fingerprint did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFingerprint(pub String);

impl std::fmt::Display for BadFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} is not a sha256 fingerprint (sha256: and 64 hex digits)",
            self.0
        )
    }
}

impl std::error::Error for BadFingerprint {}

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.to_string());
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let rest = ["sha256 fingerprint=", "sha256:", "sha256="]
            .iter()
            .find_map(|p| lower.strip_prefix(p))
            .unwrap_or(&lower);
        let hex: Vec<u8> = rest.bytes().filter(|&b| b != b':').collect();
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).ok_or_else(bad);
            out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(Fingerprint(out))
    }
}
