//! The per-host event stream: one vocabulary for every server's part of a host's timeline.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::host::Mac;

/// Something that happened to one host, stamped when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub at: SystemTime,
    /// The host's MAC address, when known.
    pub mac: Option<Mac>,
    /// The host's network address, when known.
    pub addr: Option<IpAddr>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// An event stamped now.
    pub fn now(mac: Option<Mac>, addr: Option<IpAddr>, kind: EventKind) -> Self {
        Event {
            at: SystemTime::now(),
            mac,
            addr,
            kind,
        }
    }
}

/// The DHCP message types that appear on a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DhcpStep {
    /// The client looked for servers.
    Discover,
    /// We offered an address.
    Offer,
    /// The client asked for the address.
    Request,
    /// We confirmed the lease.
    Ack,
    /// We refused the request.
    Nak,
    /// The client found the address in use.
    Decline,
    /// The client gave the address back.
    Release,
    /// The client asked for configuration only.
    Inform,
}

/// The transfer protocol of a file event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// TFTP (the first boot file).
    Tftp,
    /// HTTP (scripts, kernels, images, configs).
    Http,
}

/// The stages an installer reports about itself (`?stage=` on the report URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InstallStage {
    /// The metal image is on the disk.
    ImageWritten,
    /// The install finished: the host can boot from its disk.
    Installed,
    /// The install failed; the report's detail says why.
    Failed,
}

impl InstallStage {
    /// Every stage.
    pub const ALL: [InstallStage; 3] = [
        InstallStage::ImageWritten,
        InstallStage::Installed,
        InstallStage::Failed,
    ];

    /// The name on the wire (`image-written`, `installed`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            InstallStage::ImageWritten => "image-written",
            InstallStage::Installed => "installed",
            InstallStage::Failed => "failed",
        }
    }
}

impl std::str::FromStr for InstallStage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InstallStage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| UnknownStage(s.to_owned()))
    }
}

/// A report stage that is not an [`InstallStage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown install stage {0:?}")]
pub struct UnknownStage(pub String);

/// The power and boot-device actions a deployment takes on a host's BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PowerStep {
    /// Boot from the network next, then power on.
    On,
    /// Power off (an interrupted deployment).
    Off,
    /// Boot from the disk from now on (an installed host).
    BootDisk,
}

/// What a BMC did with a power or boot-device action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PowerOutcome {
    /// The action was applied and a read-back confirmed it.
    Verified,
    /// The action was sent, but nothing the BMC reports can show whether it was applied.
    NotVerifiable,
    /// The BMC said one thing and did another: a reply that could not be read strictly, or a
    /// read-back showing the action was not applied.
    Lied,
    /// The BMC refused us: authentication, TLS trust, an insecure mode or an unsupported action.
    Refused,
    /// The BMC did not answer (timeout, connection).
    Unreachable,
    /// Any other failure (configuration, a driver that is not built in).
    Failed,
}

impl PowerOutcome {
    /// Every outcome.
    pub const ALL: [PowerOutcome; 6] = [
        PowerOutcome::Verified,
        PowerOutcome::NotVerifiable,
        PowerOutcome::Lied,
        PowerOutcome::Refused,
        PowerOutcome::Unreachable,
        PowerOutcome::Failed,
    ];

    /// The name in JSON and in metrics labels (`verified`, `not-verifiable`, `lied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PowerOutcome::Verified => "verified",
            PowerOutcome::NotVerifiable => "not-verifiable",
            PowerOutcome::Lied => "lied",
            PowerOutcome::Refused => "refused",
            PowerOutcome::Unreachable => "unreachable",
            PowerOutcome::Failed => "failed",
        }
    }

    /// Whether the action is known to be applied.
    pub fn is_ok(self) -> bool {
        self == PowerOutcome::Verified
    }
}

impl PowerStep {
    /// The name in JSON and in metrics labels (`on`, `off`, `boot-disk`).
    pub fn as_str(self) -> &'static str {
        match self {
            PowerStep::On => "on",
            PowerStep::Off => "off",
            PowerStep::BootDisk => "boot-disk",
        }
    }
}

/// How a file transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TransferStatus {
    /// An HTTP response with this status code. An aborted download keeps its status; the
    /// event's `bytes` say how much was sent.
    Http(u16),
    /// TFTP: the client acknowledged the last block.
    TftpComplete,
    /// TFTP: we refused the request with this TFTP error code (1 not found, 2 access
    /// violation, 4 write requests and unknown modes).
    TftpRefused(u16),
    /// TFTP: refused because a concurrency limit was reached (the client got error 0).
    TftpBusy,
    /// TFTP: the client sent an error packet with this non-zero code (8: it refused our
    /// options).
    TftpClientError(u16),
    /// TFTP: the transfer ended before the client acknowledged the last block (it went away,
    /// stopped answering, or sent error 0).
    TftpIncomplete,
}

impl TransferStatus {
    /// Whether the file arrived: a complete TFTP transfer or a 2xx HTTP response.
    pub fn is_success(self) -> bool {
        match self {
            TransferStatus::Http(code) => (200..300).contains(&code),
            TransferStatus::TftpComplete => true,
            _ => false,
        }
    }
}

/// How the DNS server dealt with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DnsOutcome {
    /// Answered from the zone, with records or with none of the asked type (NOERROR).
    Answered,
    /// A name under the zone that does not exist (NXDOMAIN).
    NxDomain,
    /// Refused: a name we do not serve, for a client we do not forward for (or no upstream).
    Refused,
    /// Passed on to an upstream resolver.
    Forwarded,
    /// SERVFAIL at once: too many forwards in flight.
    Busy,
}

impl DnsOutcome {
    /// The outcome as its serialized name (`answered`, `nx-domain`, `refused`, `forwarded`,
    /// `busy`).
    pub fn as_str(self) -> &'static str {
        match self {
            DnsOutcome::Answered => "answered",
            DnsOutcome::NxDomain => "nx-domain",
            DnsOutcome::Refused => "refused",
            DnsOutcome::Forwarded => "forwarded",
            DnsOutcome::Busy => "busy",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// A DHCP exchange step.
    Dhcp {
        /// The step.
        step: DhcpStep,
        /// The address offered, requested or acknowledged.
        yiaddr: Option<std::net::Ipv4Addr>,
        /// The boot file handed out, if any.
        boot_file: Option<String>,
    },
    /// A file transfer finished (or failed).
    Transfer {
        /// TFTP or HTTP.
        protocol: Protocol,
        /// The requested path.
        path: String,
        /// Bytes sent.
        bytes: u64,
        /// How long the transfer took.
        duration: Duration,
        /// How it ended.
        status: TransferStatus,
    },
    /// A host fetched its Ignition config.
    Ignition {
        /// The role config it was built from.
        role: String,
        /// The sha512 of the bytes served, hex.
        sha512: String,
    },
    /// A host posted its hardware inventory and was assigned a role.
    Introspected {
        /// The role decided.
        role: String,
        /// The install disk chosen.
        install_dev: Option<String>,
    },
    /// A host reported progress or completion (for example from the installer).
    Report {
        /// The stage the host reported.
        stage: InstallStage,
        /// Free-form detail.
        detail: String,
    },
    /// The host asked the cluster DNS a question. Sent once per host, name, type and outcome
    /// (a host repeating a query is not news), at most a bounded number of times a second.
    Dns {
        /// The name asked, lowercase, without the trailing dot.
        name: String,
        /// The query type's number (1 A, 12 PTR, 28 AAAA, 33 SRV…).
        qtype: u16,
        /// How it was dealt with.
        outcome: DnsOutcome,
    },
    /// A power or boot-device action on the host's BMC.
    Power {
        /// The action.
        step: PowerStep,
        /// What the BMC did with it ([`PowerOutcome::is_ok`]: a read-back confirmed it).
        outcome: PowerOutcome,
    },
}

/// Where events go. Implementations must be cheap and must not block: servers call this inline.
pub trait EventSink: Send + Sync {
    /// Record one event.
    fn emit(&self, event: Event);
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl EventSink for Discard {
    fn emit(&self, _event: Event) {}
}

/// A sink that keeps every event in memory, for tests and small deployments.
#[derive(Debug, Default, Clone)]
pub struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything recorded so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}

impl<T: EventSink + ?Sized> EventSink for Arc<T> {
    fn emit(&self, event: Event) {
        (**self).emit(event)
    }
}
