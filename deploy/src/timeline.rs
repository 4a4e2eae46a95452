//! One timeline per host, built from the servers' events.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use pxe_stack::{DhcpStep, DnsOutcome, Event, EventKind, InstallStage, Mac, PowerStep, Protocol};
use serde::Serialize;

/// The stages of a network install, in the order a host goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Phase {
    /// The BMC powered the host on.
    PowerOn,
    /// DHCP, from the first DISCOVER to the first ACK.
    Dhcp,
    /// The first boot file (an iPXE binary, or a Secure Boot host's signed shim).
    BootFile,
    /// The signed GRUB that a Secure Boot host's shim loads.
    Loader,
    /// The per-host iPXE script over HTTP, or a Secure Boot host's GRUB configuration.
    Script,
    /// The kernel over HTTP.
    Kernel,
    /// The initramfs over HTTP.
    Initramfs,
    /// The hardware inventory was posted and a role decided.
    Introspection,
    /// The metal image over HTTP.
    Image,
    /// The Ignition config.
    Ignition,
    /// The installer reported completion.
    Installed,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 11] = [
        Phase::PowerOn,
        Phase::Dhcp,
        Phase::BootFile,
        Phase::Loader,
        Phase::Script,
        Phase::Kernel,
        Phase::Initramfs,
        Phase::Introspection,
        Phase::Image,
        Phase::Ignition,
        Phase::Installed,
    ];

    /// A short column name.
    pub fn label(self) -> &'static str {
        match self {
            Phase::PowerOn => "power",
            Phase::Dhcp => "dhcp",
            Phase::BootFile => "bootfile",
            Phase::Loader => "loader",
            Phase::Script => "script",
            Phase::Kernel => "kernel",
            Phase::Initramfs => "initrd",
            Phase::Introspection => "introspect",
            Phase::Image => "image",
            Phase::Ignition => "ignition",
            Phase::Installed => "installed",
        }
    }
}

/// When a phase started and ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// The start.
    pub start: SystemTime,
    /// The end.
    pub end: SystemTime,
}

impl Span {
    /// The phase's length.
    pub fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }
}

/// The most names a host's timeline keeps from its DNS queries.
pub(crate) const MAX_DNS_NAMES: usize = 64;

/// One host's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostTimeline {
    /// The host's name.
    pub name: String,
    /// The host's MAC.
    pub mac: Mac,
    /// The phases seen so far.
    pub phases: BTreeMap<Phase, Span>,
    /// The role the host got (fixed or introspected).
    pub role: Option<String>,
    /// Why the host failed, if it did.
    pub failure: Option<String>,
    /// The names the host asked the cluster DNS about, with how the last such query went
    /// (at most 64 names).
    pub dns: BTreeMap<String, DnsOutcome>,
    /// Whether the firmware's first DHCP exchange has finished (later ones, by iPXE and the
    /// installer, are not part of the DHCP phase).
    #[serde(skip)]
    dhcp_done: bool,
}

impl HostTimeline {
    /// The last phase reached.
    pub fn last_phase(&self) -> Option<Phase> {
        self.phases.keys().next_back().copied()
    }

    /// Whether the host finished.
    pub fn installed(&self) -> bool {
        self.phases.contains_key(&Phase::Installed)
    }

    /// Power-on to installed (or to the last event).
    pub fn total(&self) -> Option<Duration> {
        let start = self.phases.values().map(|s| s.start).min()?;
        let end = self.phases.values().map(|s| s.end).max()?;
        end.duration_since(start).ok()
    }

    fn extend(&mut self, phase: Phase, start: SystemTime, end: SystemTime) {
        self.phases
            .entry(phase)
            .and_modify(|s| {
                s.start = s.start.min(start);
                s.end = s.end.max(end);
            })
            .or_insert(Span { start, end });
    }
}

/// Timelines for every host of a deployment.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    hosts: Vec<HostTimeline>,
    paths: HashMap<String, Phase>,
    prefixes: Vec<(String, Phase)>,
}

impl Timeline {
    /// A timeline for these hosts (name, MAC).
    pub fn new(hosts: impl IntoIterator<Item = (String, Mac)>) -> Self {
        Timeline {
            hosts: hosts
                .into_iter()
                .map(|(name, mac)| HostTimeline {
                    name,
                    mac,
                    phases: BTreeMap::new(),
                    role: None,
                    failure: None,
                    dns: BTreeMap::new(),
                    dhcp_done: false,
                })
                .collect(),
            paths: HashMap::new(),
            prefixes: Vec::new(),
        }
    }

    /// Says which phase an HTTP transfer of `path` belongs to (kernel, initramfs, image…).
    pub fn classify(&mut self, path: impl Into<String>, phase: Phase) {
        self.paths.insert(path.into(), phase);
    }

    /// Says which phase a transfer of any path starting with `prefix` belongs to (GRUB's
    /// configuration names, which carry the host's MAC or address). Exact paths win.
    pub fn classify_prefix(&mut self, prefix: impl Into<String>, phase: Phase) {
        self.prefixes.push((prefix.into(), phase));
    }

    /// The hosts' timelines.
    pub fn hosts(&self) -> &[HostTimeline] {
        &self.hosts
    }

    /// One host's timeline.
    pub fn host(&self, mac: Mac) -> Option<&HostTimeline> {
        self.hosts.iter().find(|h| h.mac == mac)
    }

    /// Marks a host failed.
    pub fn fail(&mut self, mac: Mac, why: impl Into<String>) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.mac == mac) {
            h.failure.get_or_insert(why.into());
        }
    }

    /// Folds one event in. Events for unknown hosts are ignored.
    pub fn record(&mut self, event: &Event) {
        let Some(mac) = event.mac else { return };
        let (paths, prefixes) = (&self.paths, &self.prefixes);
        let Some(host) = self.hosts.iter_mut().find(|h| h.mac == mac) else {
            return;
        };
        let at = event.at;
        match &event.kind {
            EventKind::Dhcp { step, .. } => match step {
                DhcpStep::Discover | DhcpStep::Request | DhcpStep::Offer => {
                    // A DHCP phase ends only at an ACK; before it, keep the start.
                    host.phases
                        .entry(Phase::Dhcp)
                        .or_insert(Span { start: at, end: at });
                }
                DhcpStep::Ack if !host.dhcp_done => {
                    host.dhcp_done = true;
                    host.extend(Phase::Dhcp, at, at);
                }
                _ => {}
            },
            EventKind::Transfer {
                protocol,
                path,
                duration,
                status,
                ..
            } => {
                let start = at.checked_sub(*duration).unwrap_or(at);
                if !status.is_success() {
                    return;
                }
                let path_only = path.split('?').next().unwrap_or(path);
                let known = paths.get(path_only).copied().or_else(|| {
                    prefixes
                        .iter()
                        .find(|(p, _)| path_only.starts_with(p.as_str()))
                        .map(|(_, phase)| *phase)
                });
                let phase = match protocol {
                    Protocol::Tftp => known.or(Some(Phase::BootFile)),
                    Protocol::Http => known,
                };
                if let Some(phase) = phase {
                    host.extend(phase, start, at);
                }
            }
            EventKind::Ignition { role, .. } => {
                host.role.get_or_insert_with(|| role.clone());
                host.extend(Phase::Ignition, at, at);
            }
            EventKind::Introspected { role, .. } => {
                host.role = Some(role.clone());
                host.extend(Phase::Introspection, at, at);
            }
            EventKind::Report { stage, detail } => match stage {
                InstallStage::Installed => host.extend(Phase::Installed, at, at),
                InstallStage::Failed => {
                    host.failure.get_or_insert_with(|| detail.clone());
                }
                InstallStage::ImageWritten => host.extend(Phase::Image, at, at),
                _ => {}
            },
            EventKind::Dns { name, outcome, .. }
                if host.dns.len() < MAX_DNS_NAMES || host.dns.contains_key(name) =>
            {
                host.dns.insert(name.clone(), *outcome);
            }
            EventKind::Power {
                step: PowerStep::On,
                outcome,
            } if outcome.is_ok() => {
                host.extend(Phase::PowerOn, at, at);
            }
            _ => {}
        }
    }

    /// The timeline as JSON: per host its name, MAC, role, outcome and every phase with its
    /// start and end (milliseconds since the Unix epoch) and length in seconds. This is what
    /// [`run`](crate::run) writes to the state directory when a deployment ends.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        };
        let hosts: Vec<_> = self
            .hosts
            .iter()
            .map(|h| {
                let phases: Vec<_> = h
                    .phases
                    .iter()
                    .map(|(p, s)| {
                        serde_json::json!({
                            "phase": p.label(),
                            "start_unix_ms": ms(s.start),
                            "end_unix_ms": ms(s.end),
                            "seconds": s.duration().as_secs_f64(),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": h.name,
                    "mac": h.mac,
                    "role": h.role,
                    "installed": h.installed(),
                    "failure": h.failure,
                    "total_seconds": h.total().map(|d| d.as_secs_f64()),
                    "phases": phases,
                })
            })
            .collect();
        serde_json::json!({ "hosts": hosts })
    }

    /// A plain-text table: one row per host, seconds per phase, the total and the outcome.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "{:<12} {:<17} {:<8}", "host", "mac", "role");
        for p in Phase::ALL.iter().skip(1) {
            let _ = write!(out, " {:>10}", p.label());
        }
        let _ = writeln!(out, " {:>8}  result", "total");
        for h in &self.hosts {
            let _ = write!(
                out,
                "{:<12} {:<17} {:<8}",
                h.name,
                h.mac.to_string(),
                h.role.as_deref().unwrap_or("-")
            );
            for p in Phase::ALL.iter().skip(1) {
                match h.phases.get(p) {
                    Some(s) => {
                        let _ = write!(out, " {:>10.2}", s.duration().as_secs_f64());
                    }
                    None => {
                        let _ = write!(out, " {:>10}", "-");
                    }
                }
            }
            let total = h
                .total()
                .map(|d| format!("{:.1}", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into());
            let result = match (&h.failure, h.installed()) {
                (Some(f), _) => format!("FAILED: {f}"),
                (None, true) => "installed".into(),
                (None, false) => format!(
                    "incomplete (last: {})",
                    h.last_phase().map(Phase::label).unwrap_or("none")
                ),
            };
            let _ = writeln!(out, " {total:>8}  {result}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pxe_stack::TransferStatus;

    fn ev(mac: Mac, secs: u64, kind: EventKind) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            mac: Some(mac),
            addr: None,
            kind,
        }
    }

    #[test]
    fn phases_from_events() {
        let mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
        let mut t = Timeline::new([("node0".to_owned(), mac)]);
        t.classify("/artifacts/vmlinuz", Phase::Kernel);
        let dhcp = |step| EventKind::Dhcp {
            step,
            yiaddr: None,
            boot_file: None,
        };
        t.record(&ev(mac, 10, dhcp(DhcpStep::Discover)));
        t.record(&ev(mac, 11, dhcp(DhcpStep::Ack)));
        t.record(&ev(mac, 12, dhcp(DhcpStep::Discover)));
        t.record(&ev(mac, 25, dhcp(DhcpStep::Ack)));
        t.record(&ev(
            mac,
            20,
            EventKind::Transfer {
                protocol: Protocol::Http,
                path: "/artifacts/vmlinuz".into(),
                bytes: 1,
                duration: Duration::from_secs(3),
                status: TransferStatus::Http(200),
            },
        ));
        t.record(&ev(
            mac,
            30,
            EventKind::Report {
                stage: InstallStage::Installed,
                detail: String::new(),
            },
        ));
        let h = t.host(mac).unwrap();
        // Only the firmware's first exchange counts; iPXE's and the installer's come later.
        assert_eq!(h.phases[&Phase::Dhcp].duration(), Duration::from_secs(1));
        assert_eq!(h.phases[&Phase::Kernel].duration(), Duration::from_secs(3));
        assert!(h.installed());
        assert_eq!(h.total(), Some(Duration::from_secs(20)));
        let table = t.render_table();
        assert!(table.contains("node0"), "{table}");
        assert!(table.contains("installed"), "{table}");
        let json = t.to_json();
        assert_eq!(json["hosts"][0]["name"], "node0");
        assert_eq!(json["hosts"][0]["installed"], true);
        assert_eq!(json["hosts"][0]["phases"][0]["phase"], "dhcp");
        assert_eq!(json["hosts"][0]["phases"][1]["seconds"], 3.0);
    }

    #[test]
    fn the_secure_boot_chain_over_tftp_has_its_own_phases() {
        let mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
        let mut t = Timeline::new([("node0".to_owned(), mac)]);
        t.classify("grubx64.efi", Phase::Loader);
        t.classify("vmlinuz", Phase::Kernel);
        t.classify_prefix("grub/grub.cfg", Phase::Script);
        let tftp = |path: &str| EventKind::Transfer {
            protocol: Protocol::Tftp,
            path: path.into(),
            bytes: 1,
            duration: Duration::from_secs(1),
            status: TransferStatus::TftpComplete,
        };
        for (secs, path) in [
            (10, "shimx64.efi"),
            (12, "grubx64.efi"),
            (14, "grub/grub.cfg-01-52-54-00-00-00-01"),
            (16, "vmlinuz"),
        ] {
            t.record(&ev(mac, secs, tftp(path)));
        }
        let h = t.host(mac).unwrap();
        let starts: Vec<_> = [Phase::BootFile, Phase::Loader, Phase::Script, Phase::Kernel]
            .iter()
            .map(|p| h.phases[p].start)
            .collect();
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(starts, [at(9), at(11), at(13), at(15)]);
        assert!(t.render_table().contains("loader"));
    }

    #[test]
    fn events_of_strangers_and_failed_transfers_are_ignored() {
        let mac = Mac([0x52, 0x54, 0, 0, 0, 1]);
        let other = Mac([0x52, 0x54, 0, 0, 0, 2]);
        let mut t = Timeline::new([("node0".to_owned(), mac)]);
        t.classify("/a", Phase::Image);
        let transfer = |status| EventKind::Transfer {
            protocol: Protocol::Http,
            path: "/a".into(),
            bytes: 0,
            duration: Duration::ZERO,
            status,
        };
        t.record(&ev(other, 1, transfer(TransferStatus::Http(200))));
        t.record(&ev(mac, 1, transfer(TransferStatus::Http(404))));
        assert!(t.host(mac).unwrap().phases.is_empty());
    }
}
