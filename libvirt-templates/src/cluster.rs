//! The cluster builder: one checked description -> the cluster network and the bootstrap VM.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use pxe_stack::Mac;

use crate::Error;
use crate::domain::{
    Boot, BootDev, CharDevice, CharTarget, Clock, Devices, Disk, DiskDevice, DiskDriver,
    DiskFormat, DiskSource, DiskTarget, Domain, DomainType, Features, Flag, FwCfgEntry, Graphics,
    IGNITION_FW_CFG_KEY, Interface, InterfaceModel, InterfaceSource, InterfaceType,
    LifecycleAction, Memory, Os, OsType, Placement, QEMU_NS, QemuCommandline, Resource, Sysinfo,
    SysinfoType, Vcpu,
};
use crate::network::{
    Bootp, Bridge, Dhcp, DhcpHost, DhcpRange, Dns, DnsDomain, DnsHost, Forward, ForwardMode, Ip,
    MacAddress, Nat, Network, PortRange, Srv,
};
use crate::xml::{OnOff, YesNo};

/// Everything needed to lay out a cluster's libvirt network and its bootstrap VM.
///
/// Plain data with defaults ([`ClusterSpec::new`]); [`build`](Self::build) checks the fields
/// against each other and fails with a typed [`Error`] before any XML exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Cluster name, a DNS label such as `ocp4`.
    pub name: String,
    /// Base DNS domain such as `example.com`; nodes live under `<name>.<base_domain>`.
    pub base_domain: String,
    /// libvirt network name; default: the cluster name.
    pub network_name: Option<String>,
    /// Network UUID; default: derived from the network name, so re-defining updates in place.
    pub network_uuid: Option<String>,
    /// Host bridge name (at most 15 bytes); default: `br-<name>`.
    pub bridge: Option<String>,
    /// The host's address on the network, the guests' gateway and DNS server.
    pub address: Ipv4Addr,
    /// The subnet's prefix length (8..=30).
    pub prefix: u8,
    /// Dynamic DHCP pool; default: the upper half of the subnet. Reserved node addresses must
    /// lie outside it.
    pub dhcp_range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// One to five octets (`52:54:00:7e`); a derived MAC is the prefix followed by the host's
    /// offset in the subnet, so `.10` becomes `52:54:00:7e:00:0a`.
    pub mac_prefix: String,
    /// Offset in the subnet of the first derived node address (the bootstrap node); masters and
    /// workers follow in order.
    pub first_host_offset: u32,
    /// The bootstrap node.
    pub bootstrap: Node,
    /// Control-plane nodes.
    pub masters: Vec<Node>,
    /// Compute nodes.
    pub workers: Vec<Node>,
    /// Add `_etcd-server-ssl._tcp` SRV records and `etcd-N` names (OpenShift before 4.4 only).
    pub etcd_srv: bool,
    /// The DHCP boot file (`<bootp file server>`), if the network's DHCP should hand one out.
    pub bootp: Option<Bootp>,
    /// The bootstrap VM.
    pub vm: BootstrapVm,
}

/// One node: anything left `None` is derived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Short host name; default `bootstrap`, `master-N` or `worker-N`.
    pub name: Option<String>,
    /// MAC address; default: derived from [`ClusterSpec::mac_prefix`] and the address.
    pub mac: Option<Mac>,
    /// Address; default: derived from [`ClusterSpec::first_host_offset`].
    pub ip: Option<Ipv4Addr>,
}

/// How the bootstrap VM receives its Ignition config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IgnitionVia {
    /// `<qemu:commandline>` with `-fw_cfg name=opt/com.coreos/config,file=...`, as in the seed.
    #[default]
    QemuCommandline,
    /// libvirt's native `<sysinfo type='fwcfg'>` entry (libvirt >= 6.5; no "custom-argv" taint).
    Fwcfg,
}

/// The bootstrap VM's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapVm {
    /// Domain name; default: `<cluster>-bootstrap`.
    pub name: Option<String>,
    /// Domain UUID; default: derived from the domain name.
    pub uuid: Option<String>,
    /// `kvm`, or `qemu` (TCG) where nested KVM is unreliable.
    pub kind: DomainType,
    /// Memory in MiB (OpenShift's bootstrap wants 16 GiB).
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Guest architecture.
    pub arch: String,
    /// Machine type.
    pub machine: String,
    /// QEMU binary.
    pub emulator: String,
    /// Boot disk image path on the libvirt host.
    pub image: String,
    /// Boot disk image format.
    pub image_format: DiskFormat,
    /// Ignition config path on the libvirt host; `None` for a VM that gets it over the network.
    pub ignition: Option<String>,
    /// How [`ignition`](Self::ignition) reaches the guest.
    pub ignition_via: IgnitionVia,
    /// Boot order.
    pub boot: Vec<BootDev>,
    /// Add a VNC display.
    pub vnc: bool,
}

impl Default for BootstrapVm {
    fn default() -> Self {
        BootstrapVm {
            name: None,
            uuid: None,
            kind: DomainType::Kvm,
            memory_mib: 16384,
            vcpus: 4,
            arch: "x86_64".to_owned(),
            machine: "q35".to_owned(),
            emulator: "/usr/bin/qemu-system-x86_64".to_owned(),
            image: String::new(),
            image_format: DiskFormat::Qcow2,
            ignition: None,
            ignition_via: IgnitionVia::QemuCommandline,
            boot: vec![BootDev::Hd],
            vnc: true,
        }
    }
}

/// A node's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// The temporary bootstrap node.
    Bootstrap,
    /// A control-plane node.
    Master,
    /// A compute node.
    Worker,
}

/// A node after [`ClusterSpec::build`]: every value resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The node's role.
    pub role: Role,
    /// Short name, e.g. `master-0`.
    pub name: String,
    /// Fully qualified name, e.g. `master-0.ocp4.example.com`.
    pub fqdn: String,
    /// MAC address.
    pub mac: Mac,
    /// Reserved address.
    pub ip: Ipv4Addr,
}

/// The output of [`ClusterSpec::build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster network.
    pub network: Network,
    /// The bootstrap VM.
    pub bootstrap: Domain,
    /// Every node with its resolved name, MAC and address: bootstrap, masters, workers.
    pub hosts: Vec<Host>,
}

impl ClusterSpec {
    /// A spec with the seed's defaults: network 192.168.126.1/24, MAC prefix `52:54:00:7e`,
    /// nodes from `.10`, three masters, no workers, no etcd SRV records.
    pub fn new(name: impl Into<String>, base_domain: impl Into<String>) -> Self {
        ClusterSpec {
            name: name.into(),
            base_domain: base_domain.into(),
            network_name: None,
            network_uuid: None,
            bridge: None,
            address: Ipv4Addr::new(192, 168, 126, 1),
            prefix: 24,
            dhcp_range: None,
            mac_prefix: "52:54:00:7e".to_owned(),
            first_host_offset: 10,
            bootstrap: Node::default(),
            masters: vec![Node::default(); 3],
            workers: Vec::new(),
            etcd_srv: false,
            bootp: None,
            vm: BootstrapVm::default(),
        }
    }

    /// Replaces the masters and workers with `masters` and `workers` fully derived nodes.
    pub fn with_counts(mut self, masters: usize, workers: usize) -> Self {
        self.masters = vec![Node::default(); masters];
        self.workers = vec![Node::default(); workers];
        self
    }

    /// Checks the spec and lays out the network and the bootstrap domain.
    ///
    /// # Errors
    /// A typed [`Error`] for the first problem found: invalid names, MACs, UUIDs, subnet, DHCP
    /// range or paths; duplicate MACs, names or addresses; an address outside the subnet or
    /// inside the DHCP range; zero memory or vCPUs; a bootp file or server libvirt cannot take
    /// ([`Bootp::check`]).
    pub fn build(&self) -> Result<Cluster, Error> {
        check_label("cluster name", &self.name)?;
        check_dns_name("base domain", &self.base_domain)?;
        let cluster_domain = format!("{}.{}", self.name, self.base_domain);
        check_dns_name("cluster domain", &cluster_domain)?;

        let network_name = self
            .network_name
            .clone()
            .unwrap_or_else(|| self.name.clone());
        check_object_name("network name", &network_name)?;
        let bridge = self
            .bridge
            .clone()
            .unwrap_or_else(|| format!("br-{}", self.name));
        check_bridge(&bridge)?;
        if let Some(bootp) = &self.bootp {
            bootp.check()?;
        }
        let network_uuid = resolve_uuid("network", &self.network_uuid, "network", &network_name)?;

        let subnet = Subnet::new(self.address, self.prefix)?;
        let (range_start, range_end) = match self.dhcp_range {
            Some(range) => range,
            None => subnet.upper_half(),
        };
        subnet.check_range(range_start, range_end)?;
        let prefix = MacPrefix::parse(&self.mac_prefix)?;

        let hosts =
            self.resolve_hosts(&subnet, &prefix, &cluster_domain, range_start, range_end)?;
        let bridge_mac = prefix.derive(subnet.offset(self.address), "network bridge")?;
        if let Some(h) = hosts.iter().find(|h| h.mac == bridge_mac) {
            return Err(Error::DuplicateMac {
                mac: bridge_mac,
                first: "network bridge".to_owned(),
                second: h.name.clone(),
            });
        }

        let network = self.network(
            network_name.clone(),
            network_uuid,
            bridge,
            bridge_mac,
            &cluster_domain,
            &subnet,
            (range_start, range_end),
            &hosts,
        );
        let bootstrap = self.bootstrap_domain(&network_name, &hosts[0])?;
        Ok(Cluster {
            network,
            bootstrap,
            hosts,
        })
    }

    fn resolve_hosts(
        &self,
        subnet: &Subnet,
        prefix: &MacPrefix,
        cluster_domain: &str,
        range_start: Ipv4Addr,
        range_end: Ipv4Addr,
    ) -> Result<Vec<Host>, Error> {
        let nodes = std::iter::once((Role::Bootstrap, 0, &self.bootstrap))
            .chain(
                self.masters
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (Role::Master, i, n)),
            )
            .chain(
                self.workers
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (Role::Worker, i, n)),
            );
        let mut hosts: Vec<Host> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut by_mac: HashMap<Mac, usize> = HashMap::new();
        let mut by_ip: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (position, (role, index, node)) in nodes.enumerate() {
            let name = match (&node.name, role) {
                (Some(name), _) => name.clone(),
                (None, Role::Bootstrap) => "bootstrap".to_owned(),
                (None, Role::Master) => format!("master-{index}"),
                (None, Role::Worker) => format!("worker-{index}"),
            };
            check_label("node name", &name)?;
            if by_name.contains_key(&name) {
                return Err(Error::DuplicateName { name });
            }
            let ip = match node.ip {
                Some(ip) => ip,
                None => subnet.nth(
                    self.first_host_offset.saturating_add(position as u32),
                    &name,
                )?,
            };
            subnet.check_host(ip, &name)?;
            if (range_start..=range_end).contains(&ip) {
                return Err(Error::AddressInDhcpRange {
                    host: name,
                    ip,
                    start: range_start,
                    end: range_end,
                });
            }
            if let Some(&first) = by_ip.get(&ip) {
                return Err(Error::DuplicateAddress {
                    ip,
                    first: hosts[first].name.clone(),
                    second: name,
                });
            }
            let mac = match node.mac {
                Some(mac) => mac,
                None => prefix.derive(subnet.offset(ip), &name)?,
            };
            check_mac(mac, &name)?;
            if let Some(&first) = by_mac.get(&mac) {
                return Err(Error::DuplicateMac {
                    mac,
                    first: hosts[first].name.clone(),
                    second: name,
                });
            }
            by_name.insert(name.clone(), hosts.len());
            by_mac.insert(mac, hosts.len());
            by_ip.insert(ip, hosts.len());
            hosts.push(Host {
                role,
                fqdn: format!("{name}.{cluster_domain}"),
                name,
                mac,
                ip,
            });
        }
        Ok(hosts)
    }

    #[allow(clippy::too_many_arguments)] // reason: private assembly step; each value was checked by build()
    fn network(
        &self,
        name: String,
        uuid: String,
        bridge: String,
        bridge_mac: Mac,
        cluster_domain: &str,
        subnet: &Subnet,
        (range_start, range_end): (Ipv4Addr, Ipv4Addr),
        hosts: &[Host],
    ) -> Network {
        let api = format!("api.{cluster_domain}");
        let api_int = format!("api-int.{cluster_domain}");
        let mut dns_hosts = Vec::new();
        let mut srv = Vec::new();
        let mut master_index = 0;
        for host in hosts {
            let mut names = Vec::new();
            // The API answers on the bootstrap node until the control plane takes over, so both
            // carry the api names (what openshift-install's own libvirt provider does).
            if matches!(host.role, Role::Bootstrap | Role::Master) {
                names.push(api.clone());
                names.push(api_int.clone());
            }
            names.push(host.fqdn.clone());
            if host.role == Role::Master && self.etcd_srv {
                let etcd = format!("etcd-{master_index}.{cluster_domain}");
                names.push(etcd.clone());
                srv.push(Srv {
                    service: "etcd-server-ssl".to_owned(),
                    protocol: "tcp".to_owned(),
                    domain: Some(cluster_domain.to_owned()),
                    target: Some(etcd),
                    port: Some(2380),
                    priority: Some(0),
                    weight: Some(10),
                });
            }
            if host.role == Role::Master {
                master_index += 1;
            }
            dns_hosts.push(DnsHost {
                ip: IpAddr::V4(host.ip),
                hostname: names,
            });
        }
        Network {
            name,
            uuid: Some(uuid),
            forward: Some(Forward {
                mode: Some(ForwardMode::Nat),
                dev: None,
                nat: Some(Nat {
                    address: None,
                    port: Some(PortRange {
                        start: 1024,
                        end: 65535,
                    }),
                }),
                interface: Vec::new(),
            }),
            bridge: Some(Bridge {
                name: Some(bridge),
                stp: Some(OnOff::On),
                delay: Some(0),
            }),
            mac: Some(MacAddress {
                address: bridge_mac,
            }),
            domain: Some(DnsDomain {
                name: cluster_domain.to_owned(),
                local_only: Some(YesNo::Yes),
            }),
            dns: Some(Dns {
                host: dns_hosts,
                srv,
                ..Dns::default()
            }),
            ip: vec![Ip {
                family: None,
                address: IpAddr::V4(self.address),
                netmask: Some(subnet.netmask()),
                prefix: None,
                tftp: None,
                dhcp: Some(Dhcp {
                    range: vec![DhcpRange {
                        start: IpAddr::V4(range_start),
                        end: IpAddr::V4(range_end),
                    }],
                    host: hosts
                        .iter()
                        .map(|h| DhcpHost {
                            mac: Some(h.mac),
                            id: None,
                            name: Some(h.name.clone()),
                            ip: Some(IpAddr::V4(h.ip)),
                        })
                        .collect(),
                    bootp: self.bootp.clone(),
                }),
            }],
        }
    }

    fn bootstrap_domain(&self, network_name: &str, host: &Host) -> Result<Domain, Error> {
        let vm = &self.vm;
        let name = vm
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-bootstrap", self.name));
        check_object_name("domain name", &name)?;
        let uuid = resolve_uuid("domain", &vm.uuid, "domain", &name)?;
        if vm.memory_mib == 0 {
            return Err(Error::ZeroMemory { domain: name });
        }
        if vm.vcpus == 0 {
            return Err(Error::ZeroVcpus { domain: name });
        }
        check_path("image", &vm.image)?;
        let ignition = match &vm.ignition {
            Some(path) => {
                check_path("ignition", path)?;
                Some(path.as_str())
            }
            None => None,
        };
        let (xmlns_qemu, qemu_commandline, sysinfo) = match (ignition, vm.ignition_via) {
            (None, _) => (None, None, Vec::new()),
            (Some(path), IgnitionVia::QemuCommandline) => (
                Some(QEMU_NS.to_owned()),
                // QEMU option values escape a literal comma by doubling it.
                Some(QemuCommandline::ignition(&path.replace(',', ",,"))),
                Vec::new(),
            ),
            (Some(path), IgnitionVia::Fwcfg) => (
                None,
                None,
                vec![Sysinfo {
                    kind: SysinfoType::Fwcfg,
                    entry: vec![FwCfgEntry {
                        name: IGNITION_FW_CFG_KEY.to_owned(),
                        file: Some(path.to_owned()),
                    }],
                }],
            ),
        };
        Ok(Domain {
            kind: vm.kind,
            xmlns_qemu,
            name,
            uuid: Some(uuid),
            memory: Memory::mib(vm.memory_mib),
            current_memory: None,
            vcpu: Vcpu {
                placement: Some(Placement::Static),
                count: vm.vcpus,
            },
            resource: Some(Resource {
                partition: "/machine".to_owned(),
            }),
            sysinfo,
            os: Os {
                kind: OsType {
                    arch: Some(vm.arch.clone()),
                    machine: Some(vm.machine.clone()),
                    kind: "hvm".to_owned(),
                },
                boot: vm.boot.iter().map(|&dev| Boot { dev }).collect(),
            },
            features: Some(Features {
                acpi: Some(Flag {}),
                apic: Some(Flag {}),
                pae: Some(Flag {}),
            }),
            clock: Some(Clock {
                offset: "utc".to_owned(),
            }),
            on_poweroff: Some(LifecycleAction::Destroy),
            on_reboot: Some(LifecycleAction::Restart),
            on_crash: Some(LifecycleAction::Destroy),
            devices: Devices {
                emulator: Some(vm.emulator.clone()),
                disk: vec![Disk {
                    kind: crate::domain::DiskType::File,
                    device: Some(DiskDevice::Disk),
                    driver: Some(DiskDriver {
                        name: "qemu".to_owned(),
                        format: Some(vm.image_format),
                    }),
                    source: Some(DiskSource {
                        file: Some(vm.image.clone()),
                        dev: None,
                    }),
                    target: DiskTarget {
                        dev: "vda".to_owned(),
                        bus: Some("virtio".to_owned()),
                    },
                }],
                interface: vec![Interface {
                    kind: InterfaceType::Network,
                    mac: Some(MacAddress { address: host.mac }),
                    source: Some(InterfaceSource {
                        network: Some(network_name.to_owned()),
                        bridge: None,
                    }),
                    model: Some(InterfaceModel {
                        kind: "virtio".to_owned(),
                    }),
                }],
                serial: vec![CharDevice::pty(Some(CharTarget {
                    kind: None,
                    port: Some(0),
                }))],
                console: vec![CharDevice::pty(Some(CharTarget {
                    kind: Some("serial".to_owned()),
                    port: Some(0),
                }))],
                graphics: if vm.vnc {
                    vec![Graphics {
                        kind: "vnc".to_owned(),
                        port: Some(-1),
                        autoport: Some(YesNo::Yes),
                        listen: None,
                    }]
                } else {
                    Vec::new()
                },
            },
            qemu_commandline,
        })
    }
}

/// An IPv4 subnet given by the host's address and the prefix length.
struct Subnet {
    address: Ipv4Addr,
    prefix: u8,
    network: u32,
    broadcast: u32,
}

impl Subnet {
    fn new(address: Ipv4Addr, prefix: u8) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidSubnet {
            address,
            prefix,
            reason,
        };
        if !(8..=30).contains(&prefix) {
            return Err(invalid("prefix length must be between 8 and 30"));
        }
        let mask = u32::MAX << (32 - prefix);
        let a = u32::from(address);
        let network = a & mask;
        let broadcast = network | !mask;
        if a == network || a == broadcast {
            return Err(invalid(
                "the host address is the network or broadcast address",
            ));
        }
        if address.is_multicast() || address.is_loopback() || address.is_unspecified() {
            return Err(invalid("not a unicast host address"));
        }
        Ok(Subnet {
            address,
            prefix,
            network,
            broadcast,
        })
    }

    fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX << (32 - self.prefix))
    }

    fn offset(&self, ip: Ipv4Addr) -> u32 {
        u32::from(ip).wrapping_sub(self.network)
    }

    fn contains_host(&self, ip: Ipv4Addr) -> bool {
        let a = u32::from(ip);
        a > self.network && a < self.broadcast
    }

    fn upper_half(&self) -> (Ipv4Addr, Ipv4Addr) {
        let size = self.broadcast - self.network + 1;
        (
            Ipv4Addr::from(self.network + size / 2),
            Ipv4Addr::from(self.broadcast - 1),
        )
    }

    fn nth(&self, offset: u32, host: &str) -> Result<Ipv4Addr, Error> {
        let a = self.network.saturating_add(offset);
        let ip = Ipv4Addr::from(a);
        if a >= self.broadcast {
            return Err(self.outside(host, ip));
        }
        Ok(ip)
    }

    fn outside(&self, host: &str, ip: Ipv4Addr) -> Error {
        Error::AddressOutsideNetwork {
            host: host.to_owned(),
            ip,
            network: Ipv4Addr::from(self.network),
            prefix: self.prefix,
        }
    }

    fn check_host(&self, ip: Ipv4Addr, host: &str) -> Result<(), Error> {
        if !self.contains_host(ip) || ip == self.address {
            return Err(self.outside(host, ip));
        }
        Ok(())
    }

    fn check_range(&self, start: Ipv4Addr, end: Ipv4Addr) -> Result<(), Error> {
        let invalid = |reason| Error::InvalidDhcpRange { start, end, reason };
        if start > end {
            return Err(invalid("start is after end"));
        }
        if !self.contains_host(start) || !self.contains_host(end) {
            return Err(invalid("not inside the subnet's host addresses"));
        }
        if (start..=end).contains(&self.address) {
            return Err(invalid("covers the network's own address"));
        }
        Ok(())
    }
}

/// The leading octets of derived MACs.
struct MacPrefix {
    text: String,
    octets: Vec<u8>,
}

impl MacPrefix {
    fn parse(text: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidMacPrefix {
            input: text.to_owned(),
        };
        let octets = text
            .split([':', '-'])
            .map(|part| {
                if part.len() == 2 {
                    u8::from_str_radix(part, 16).map_err(|_| invalid())
                } else {
                    Err(invalid())
                }
            })
            .collect::<Result<Vec<u8>, Error>>()?;
        if octets.is_empty() || octets.len() > 5 || octets[0] & 0x01 != 0 {
            return Err(invalid());
        }
        Ok(MacPrefix {
            text: text.to_owned(),
            octets,
        })
    }

    fn derive(&self, offset: u32, host: &str) -> Result<Mac, Error> {
        let free = 6 - self.octets.len();
        if free < 4 && u64::from(offset) >= 1u64 << (8 * free) {
            return Err(Error::MacPrefixTooLong {
                prefix: self.text.clone(),
                offset,
                host: host.to_owned(),
            });
        }
        let mut mac = [0u8; 6];
        mac[..self.octets.len()].copy_from_slice(&self.octets);
        let tail = u64::from(offset).to_be_bytes();
        mac[self.octets.len()..].copy_from_slice(&tail[8 - free..]);
        Ok(Mac(mac))
    }
}

fn check_mac(mac: Mac, host: &str) -> Result<(), Error> {
    let reason = if mac.is_multicast() {
        "multicast addresses cannot identify a host"
    } else if mac.0 == [0; 6] {
        "the all-zero address cannot identify a host"
    } else {
        return Ok(());
    };
    Err(Error::InvalidMac {
        host: host.to_owned(),
        mac,
        reason,
    })
}

/// A DNS label: 1-63 of lowercase letters, digits and inner hyphens.
fn check_label(field: &'static str, value: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidName {
        field,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() || value.len() > 63 {
        return Err(invalid("a DNS label must be 1 to 63 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "a DNS label may hold only lowercase letters, digits and hyphens",
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(invalid("a DNS label cannot start or end with a hyphen"));
    }
    Ok(())
}

/// A DNS name: dot-separated labels, at most 253 characters.
fn check_dns_name(field: &'static str, value: &str) -> Result<(), Error> {
    if value.len() > 253 {
        return Err(Error::InvalidName {
            field,
            value: value.to_owned(),
            reason: "a DNS name must be at most 253 characters",
        });
    }
    for label in value.split('.') {
        check_label(field, label).map_err(|_| Error::InvalidName {
            field,
            value: value.to_owned(),
            reason: "every dot-separated label must be 1 to 63 lowercase letters, digits or inner hyphens",
        })?;
    }
    Ok(())
}

/// A libvirt object name: printable, no slash (libvirt makes file names from it).
fn check_object_name(field: &'static str, value: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidName {
        field,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() || value.len() > 200 {
        return Err(invalid("must be 1 to 200 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            "may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// A Linux interface name: 1-15 bytes, no slash, colon or whitespace.
fn check_bridge(value: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidName {
        field: "bridge name",
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() || value.len() > 15 {
        return Err(invalid("an interface name must be 1 to 15 bytes"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || value == "."
        || value == ".."
    {
        return Err(invalid(
            "an interface name may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

fn check_path(field: &'static str, path: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidPath {
        field,
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("the path is empty"));
    }
    if !path.starts_with('/') {
        return Err(invalid("libvirt needs an absolute path"));
    }
    if path.contains(['\n', '\0']) {
        return Err(invalid("the path holds a newline or NUL"));
    }
    Ok(())
}

fn resolve_uuid(
    field: &'static str,
    given: &Option<String>,
    kind: &str,
    name: &str,
) -> Result<String, Error> {
    match given {
        Some(uuid) if is_uuid(uuid) => Ok(uuid.to_ascii_lowercase()),
        Some(uuid) => Err(Error::InvalidUuid {
            field,
            value: uuid.clone(),
        }),
        None => Ok(derived_uuid(kind, name)),
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A stable, name-based UUID (RFC 9562 version 8 layout) so that re-rendering the same cluster
/// yields the same UUID and libvirt updates the object instead of refusing a second one.
pub(crate) fn derived_uuid(kind: &str, name: &str) -> String {
    fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
        let mut h = seed;
        for part in parts {
            for &b in *part {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
    let parts: [&[u8]; 3] = [b"libvirt-templates", kind.as_bytes(), name.as_bytes()];
    let hi = fnv1a(0xcbf2_9ce4_8422_2325, &parts);
    let lo = fnv1a(0x6c62_272e_07bb_0142, &parts);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ClusterSpec {
        let mut s = ClusterSpec::new("ocp4", "example.com").with_counts(3, 2);
        s.vm.image = "/var/lib/libvirt/images/ocp4-bootstrap.qcow2".to_owned();
        s
    }

    /// Applies `edit` to the default spec and returns the error `build` gives.
    fn check_err(edit: impl FnOnce(&mut ClusterSpec)) -> Error {
        let mut s = spec();
        edit(&mut s);
        s.build().expect_err("spec should be rejected")
    }

    #[test]
    fn defaults_build() {
        let c = spec().build().unwrap();
        let names: Vec<_> = c.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bootstrap",
                "master-0",
                "master-1",
                "master-2",
                "worker-0",
                "worker-1"
            ]
        );
        assert_eq!(c.hosts[0].ip, Ipv4Addr::new(192, 168, 126, 10));
        assert_eq!(c.hosts[0].mac.to_string(), "52:54:00:7e:00:0a");
        assert_eq!(c.hosts[5].ip, Ipv4Addr::new(192, 168, 126, 15));
        assert_eq!(c.network.dns.as_ref().unwrap().srv.len(), 0);
        assert_eq!(c.bootstrap.name, "ocp4-bootstrap");
        assert_eq!(c.network.uuid, spec().build().unwrap().network.uuid);
    }

    #[test]
    fn etcd_srv_only_when_asked() {
        let mut s = spec();
        s.etcd_srv = true;
        let c = s.build().unwrap();
        let srv = &c.network.dns.as_ref().unwrap().srv;
        assert_eq!(srv.len(), 3);
        assert_eq!(srv[2].target.as_deref(), Some("etcd-2.ocp4.example.com"));
    }

    #[test]
    fn rejections() {
        let mac = |s: &str| s.parse::<Mac>().unwrap();
        type Edit = Box<dyn FnOnce(&mut ClusterSpec)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|s| s.name = "OCP4".into()), "InvalidName"),
            (Box::new(|s| s.name = "-x".into()), "InvalidName"),
            (Box::new(|s| s.name = String::new()), "InvalidName"),
            (
                Box::new(|s| s.base_domain = "example..com".into()),
                "InvalidName",
            ),
            (
                Box::new(|s| s.bridge = Some("a-very-long-bridge".into())),
                "InvalidName",
            ),
            (
                Box::new(|s| s.network_name = Some("a/b".into())),
                "InvalidName",
            ),
            (
                Box::new(|s| s.masters[1].name = Some("bad_name".into())),
                "InvalidName",
            ),
            (
                Box::new(|s| s.masters[1].name = Some("bootstrap".into())),
                "DuplicateName",
            ),
            (
                Box::new(move |s| s.masters[0].mac = Some(mac("01:00:5e:00:00:01"))),
                "InvalidMac",
            ),
            (
                Box::new(move |s| s.masters[0].mac = Some(mac("00:00:00:00:00:00"))),
                "InvalidMac",
            ),
            (
                Box::new(move |s| s.workers[0].mac = Some(mac("52:54:00:7e:00:0a"))),
                "DuplicateMac",
            ),
            (
                Box::new(move |s| s.workers[0].mac = Some(mac("52:54:00:7e:00:01"))),
                "DuplicateMac",
            ),
            (
                Box::new(|s| s.mac_prefix = "zz:54".into()),
                "InvalidMacPrefix",
            ),
            (
                Box::new(|s| s.mac_prefix = "01:54".into()),
                "InvalidMacPrefix",
            ),
            (
                Box::new(|s| s.mac_prefix = "52:54:00:7e:00:11".into()),
                "InvalidMacPrefix",
            ),
            (
                Box::new(|s| s.masters[0].ip = Some(Ipv4Addr::new(10, 0, 0, 5))),
                "AddressOutsideNetwork",
            ),
            (
                Box::new(|s| s.masters[0].ip = Some(Ipv4Addr::new(192, 168, 126, 1))),
                "AddressOutsideNetwork",
            ),
            (
                Box::new(|s| s.masters[0].ip = Some(Ipv4Addr::new(192, 168, 126, 255))),
                "AddressOutsideNetwork",
            ),
            (
                Box::new(|s| s.masters[0].ip = Some(Ipv4Addr::new(192, 168, 126, 200))),
                "AddressInDhcpRange",
            ),
            (
                Box::new(|s| s.workers[1].ip = Some(Ipv4Addr::new(192, 168, 126, 10))),
                "DuplicateAddress",
            ),
            (Box::new(|s| s.prefix = 31), "InvalidSubnet"),
            (
                Box::new(|s| s.address = Ipv4Addr::new(192, 168, 126, 0)),
                "InvalidSubnet",
            ),
            (
                Box::new(|s| {
                    s.dhcp_range = Some((
                        Ipv4Addr::new(192, 168, 126, 200),
                        Ipv4Addr::new(192, 168, 126, 100),
                    ))
                }),
                "InvalidDhcpRange",
            ),
            (
                Box::new(|s| {
                    s.dhcp_range = Some((
                        Ipv4Addr::new(192, 168, 126, 1),
                        Ipv4Addr::new(192, 168, 126, 9),
                    ))
                }),
                "InvalidDhcpRange",
            ),
            (
                Box::new(|s| {
                    s.dhcp_range = Some((
                        Ipv4Addr::new(192, 168, 126, 2),
                        Ipv4Addr::new(192, 168, 127, 9),
                    ))
                }),
                "InvalidDhcpRange",
            ),
            (
                Box::new(|s| {
                    s.dhcp_range = Some((
                        Ipv4Addr::new(192, 168, 126, 2),
                        Ipv4Addr::new(192, 168, 126, 12),
                    ))
                }),
                "AddressInDhcpRange",
            ),
            (
                Box::new(|s| {
                    s.first_host_offset = 250;
                    s.dhcp_range = Some((
                        Ipv4Addr::new(192, 168, 126, 2),
                        Ipv4Addr::new(192, 168, 126, 9),
                    ));
                }),
                "AddressOutsideNetwork",
            ),
            (Box::new(|s| s.vm.memory_mib = 0), "ZeroMemory"),
            (Box::new(|s| s.vm.vcpus = 0), "ZeroVcpus"),
            (Box::new(|s| s.vm.image = String::new()), "InvalidPath"),
            (
                Box::new(|s| s.vm.ignition = Some("relative.ign".into())),
                "InvalidPath",
            ),
            (
                Box::new(|s| s.vm.uuid = Some("not-a-uuid".into())),
                "InvalidUuid",
            ),
            (
                Box::new(|s| s.network_uuid = Some("1234".into())),
                "InvalidUuid",
            ),
        ];
        for (i, (edit, want)) in cases.into_iter().enumerate() {
            let err = check_err(edit);
            let got = format!("{err:?}");
            assert!(got.starts_with(want), "case {i}: want {want}, got {got}");
            let msg = err.to_string();
            assert!(!msg.ends_with('.'), "case {i}: {msg}");
            assert!(
                msg.chars().next().unwrap().is_lowercase() || msg.starts_with("MAC"),
                "case {i}: {msg}"
            );
        }
    }

    #[test]
    fn mac_prefix_too_long_for_offset() {
        let mut s = spec();
        s.mac_prefix = "52:54:00:7e:00".into();
        s.prefix = 16;
        s.address = Ipv4Addr::new(10, 1, 0, 1);
        s.first_host_offset = 300;
        assert!(matches!(
            s.build(),
            Err(Error::MacPrefixTooLong { offset: 300, .. })
        ));
    }

    #[test]
    fn derived_macs_follow_offsets() {
        let p = MacPrefix::parse("52:54:00").unwrap();
        assert_eq!(
            p.derive(0x10203, "x").unwrap().to_string(),
            "52:54:00:01:02:03"
        );
        let p = MacPrefix::parse("52-54-00-7e-00").unwrap();
        assert_eq!(p.derive(255, "x").unwrap().to_string(), "52:54:00:7e:00:ff");
        assert!(p.derive(256, "x").is_err());
    }

    #[test]
    fn uuid_shape() {
        let u = derived_uuid("network", "ocp4");
        assert!(is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "8");
        assert_ne!(u, derived_uuid("domain", "ocp4"));
    }

    #[test]
    fn comma_in_ignition_path_is_escaped() {
        let mut s = spec();
        s.vm.ignition = Some("/srv/a,b.ign".into());
        let c = s.build().unwrap();
        let args = &c.bootstrap.qemu_commandline.unwrap().arg;
        assert_eq!(
            args[1].value,
            "name=opt/com.coreos/config,file=/srv/a,,b.ign"
        );
    }
}
