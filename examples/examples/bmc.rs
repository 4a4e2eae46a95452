//! ipmitool-like power and boot-device control over IPMI, Redfish or libvirt, with read-back.
//!
//! ```text
//! cargo run -p examples --example bmc -- --driver ipmi --address 10.0.0.5 --user admin --password secret power status
//! cargo run -p examples --example bmc -- --driver ipmi --address 127.0.0.1:9623 --user admin --password password bootdev pxe --uefi
//! cargo run -p examples --example bmc -- --driver redfish --address https://10.0.0.6 --ca bmc-ca.pem \
//!     --user admin --password secret power on
//! cargo run -p examples --features libvirt --example bmc -- --driver libvirt --address test:///default --system test power cycle
//! ```

use std::time::Duration;

use anyhow::Context;
use bmc_power::{Bmc, BootDevice, BootMode, BootOverride, Persistence, Policy, PowerAction};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(about = "Power and boot-device control through a BMC, verified by read-back")]
struct Args {
    /// Which protocol to speak.
    #[arg(long, value_enum)]
    driver: Driver,
    /// IPMI: host[:port]; Redfish: base URL (https://host); libvirt: connection URI.
    #[arg(long)]
    address: String,
    /// User name (IPMI, Redfish).
    #[arg(long, default_value = "")]
    user: String,
    /// Password (IPMI, Redfish).
    #[arg(long, env = "BMC_PASSWORD", default_value = "", hide_env_values = true)]
    password: String,
    /// Redfish: system id; libvirt: domain name.
    #[arg(long)]
    system: Option<String>,
    /// Redfish: PEM file with the CA certificate(s) to trust instead of the system store.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Redfish: do not check the BMC's certificate at all.
    #[arg(long)]
    insecure: bool,
    /// IPMI: protocol version.
    #[arg(long, value_enum, default_value_t = IpmiProto::Auto)]
    interface: IpmiProto,
    /// Seconds to wait for one answer.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// Retries after a silent attempt.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Seconds to wait for the power state to settle.
    #[arg(long, default_value_t = 60.0)]
    settle: f64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Driver {
    Ipmi,
    Redfish,
    Libvirt,
}

#[derive(Clone, Copy, ValueEnum)]
enum IpmiProto {
    Auto,
    Lanplus,
    Lan,
}

#[derive(Subcommand)]
enum Cmd {
    /// Power: status, on, off, cycle, reset, soft.
    Power {
        #[arg(value_enum)]
        op: PowerOp,
    },
    /// Set the next boot device, then read it back.
    Bootdev {
        #[arg(value_enum)]
        device: Device,
        /// Every boot, not just the next one.
        #[arg(long)]
        persistent: bool,
        /// Request UEFI boot.
        #[arg(long, conflicts_with = "legacy")]
        uefi: bool,
        /// Request legacy BIOS boot (default: the BMC's choice; IPMI sends legacy).
        #[arg(long)]
        legacy: bool,
    },
    /// Read the boot override back.
    Bootparam,
}

#[derive(Clone, Copy, ValueEnum)]
enum PowerOp {
    Status,
    On,
    Off,
    Cycle,
    Reset,
    Soft,
}

#[derive(Clone, Copy, ValueEnum)]
enum Device {
    Pxe,
    Disk,
    Cdrom,
    Bios,
    UefiHttp,
    None,
}

async fn driver(a: &Args) -> anyhow::Result<Box<dyn Bmc>> {
    let policy = Policy {
        timeout: Duration::from_secs_f64(a.timeout),
        retries: a.retries,
        settle: Duration::from_secs_f64(a.settle),
        ..Policy::default()
    };
    Ok(match a.driver {
        Driver::Ipmi => Box::new(bmc_power::Ipmi::new(bmc_power::IpmiConfig {
            address: a.address.clone(),
            credentials: bmc_power::Credentials {
                username: a.user.clone(),
                password: a.password.clone(),
                kg: None,
            },
            version: match a.interface {
                IpmiProto::Auto => bmc_power::IpmiVersion::Auto,
                IpmiProto::Lanplus => bmc_power::IpmiVersion::Lanplus,
                IpmiProto::Lan => bmc_power::IpmiVersion::Lan,
            },
            policy,
            ..bmc_power::IpmiConfig::default()
        })?),
        Driver::Redfish => {
            let tls = match (&a.ca, a.insecure) {
                (_, true) => bmc_power::Tls::InsecureSkipVerify,
                (Some(p), false) => bmc_power::Tls::CustomCa(
                    std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                ),
                (None, false) => bmc_power::Tls::System,
            };
            Box::new(bmc_power::Redfish::new(bmc_power::RedfishConfig {
                endpoint: a.address.clone(),
                username: a.user.clone(),
                password: a.password.clone(),
                system: a.system.clone(),
                tls,
                policy,
                ..bmc_power::RedfishConfig::default()
            })?)
        }
        #[cfg(feature = "libvirt")]
        Driver::Libvirt => Box::new(
            bmc_power::Libvirt::connect(bmc_power::LibvirtConfig {
                uri: a.address.clone(),
                domain: a
                    .system
                    .clone()
                    .context("--system <domain> is required for libvirt")?,
                policy,
            })
            .await?,
        ),
        #[cfg(not(feature = "libvirt"))]
        Driver::Libvirt => anyhow::bail!("built without libvirt: add --features libvirt"),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let bmc = driver(&a).await?;
    match a.command {
        Cmd::Power { op } => {
            let action = match op {
                PowerOp::Status => {
                    println!("Chassis Power is {}", bmc.power_status().await?);
                    return Ok(());
                }
                PowerOp::On => PowerAction::On,
                PowerOp::Off => PowerAction::Off,
                PowerOp::Cycle => PowerAction::Cycle,
                PowerOp::Reset => PowerAction::Reset,
                PowerOp::Soft => PowerAction::SoftOff,
            };
            let state = bmc.power(action).await?;
            println!("Chassis Power Control: {action}: now {state}");
        }
        Cmd::Bootdev {
            device,
            persistent,
            uefi,
            legacy,
        } => {
            let device = match device {
                Device::Pxe => BootDevice::Pxe,
                Device::Disk => BootDevice::Disk,
                Device::Cdrom => BootDevice::Cdrom,
                Device::Bios => BootDevice::BiosSetup,
                Device::UefiHttp => BootDevice::UefiHttp,
                Device::None => BootDevice::None,
            };
            let boot = BootOverride {
                device,
                persistence: if persistent {
                    Persistence::Persistent
                } else {
                    Persistence::Once
                },
                mode: match (uefi, legacy) {
                    (true, _) => Some(BootMode::Uefi),
                    (false, true) => Some(BootMode::Legacy),
                    (false, false) => None,
                },
            };
            let read = bmc.set_boot(boot).await?;
            println!("Set Boot Device to {device}; read back: {read}");
        }
        Cmd::Bootparam => println!("Boot override: {}", bmc.boot().await?),
    }
    Ok(())
}
