//! ipmitool-like power and boot-device control over IPMI, Redfish or libvirt, with read-back.
//!
//! ```text
//! cargo run -p examples --example bmc -- --driver ipmi --address 10.0.0.5 --user admin --password secret power status
//! cargo run -p examples --example bmc -- --driver ipmi --address 127.0.0.1:9623 --user admin --password password bootdev pxe --uefi
//! cargo run -p examples --example bmc -- --driver redfish --address https://10.0.0.6 --ca bmc-ca.pem \
//!     --user admin --password secret power on
//! cargo run -p examples --example bmc -- --driver redfish --address https://10.0.0.7 \
//!     --tls-fingerprint sha256:9f86d0818... --auth basic --user admin --password secret power status
//! cargo run -p examples --example bmc -- --driver redfish --address https://10.0.0.7 --tofu -v power status
//! cargo run -p examples --features libvirt --example bmc -- --driver libvirt --address test:///default --system test power cycle
//! ```
//!
//! `--ca` takes the BMC's own self-signed certificate (CA:TRUE or not) or its CA;
//! `--tls-fingerprint` pins one certificate (`openssl x509 -noout -fingerprint -sha256`);
//! `--tofu` trusts the first certificate and prints its fingerprint to pin next time. `-v`
//! prints what was used: the IPMI cipher suite or authtype, the Redfish auth mode and
//! certificate. IPMI authtype NONE/STRAIGHT needs `--allow-insecure-auth`. A reset or cycle
//! that nothing can show exits with status 3 ("not verifiable"), a BMC that lied with 4.

use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use bmc_power::{
    Bmc, BmcFuture, BootDevice, BootMode, BootOverride, Persistence, Policy, PowerAction,
    PowerState,
};
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
    /// Redfish: PEM file with the certificate(s) to trust instead of the system store: the
    /// BMC's own self-signed certificate, or the CA that issued it.
    #[arg(long, conflicts_with_all = ["insecure", "tls_fingerprint", "tofu"])]
    ca: Option<std::path::PathBuf>,
    /// Redfish: accept exactly the certificate with this SHA-256 fingerprint
    /// (`sha256:<64 hex>` or openssl's `AB:CD:...`); checked before any credential is sent.
    #[arg(long, conflicts_with_all = ["insecure", "tofu"])]
    tls_fingerprint: Option<bmc_power::Fingerprint>,
    /// Redfish: trust the first certificate presented and print its fingerprint (pin it with
    /// --tls-fingerprint next time).
    #[arg(long, conflicts_with = "insecure")]
    tofu: bool,
    /// Redfish: do not check the BMC's certificate at all.
    #[arg(long)]
    insecure: bool,
    /// Redfish: session (X-Auth-Token), basic, or auto (session, then basic when the session
    /// service answers 401/403/404/405).
    #[arg(long, value_enum, default_value_t = AuthMode::Auto)]
    auth: AuthMode,
    /// IPMI: protocol version (auto = RMCP+ only, never a fallback to IPMI 1.5).
    #[arg(long, value_enum, default_value_t = IpmiProto::Auto)]
    interface: IpmiProto,
    /// IPMI 1.5: allow authtype NONE or STRAIGHT (the password in clear) when the BMC offers
    /// nothing better.
    #[arg(long)]
    allow_insecure_auth: bool,
    /// Print what was negotiated: IPMI suite or authtype, Redfish auth and certificate.
    #[arg(short, long)]
    verbose: bool,
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
enum AuthMode {
    Auto,
    Session,
    Basic,
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

/// A driver shared between the `dyn Bmc` the commands use and the report printed after them.
struct Shared<B>(Arc<B>);

impl<B: Bmc> Bmc for Shared<B> {
    fn power_status(&self) -> BmcFuture<'_, PowerState> {
        self.0.power_status()
    }
    fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
        self.0.power(action)
    }
    fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
        self.0.set_boot(boot)
    }
    fn boot(&self) -> BmcFuture<'_, BootOverride> {
        self.0.boot()
    }
}

/// What the driver used, for `-v` and `--tofu`.
enum Used {
    Ipmi(Arc<bmc_power::Ipmi>),
    Redfish(Arc<bmc_power::Redfish>),
    #[cfg_attr(
        not(feature = "libvirt"),
        allow(dead_code, reason = "only the libvirt driver reports nothing")
    )]
    Other,
}

impl Used {
    async fn report(&self, verbose: bool, tofu: bool) {
        match self {
            Used::Ipmi(i) if verbose => {
                if let Some(n) = i.negotiated() {
                    eprintln!("ipmi session: {n}");
                }
            }
            Used::Redfish(r) => {
                if verbose && let Some(a) = r.auth_in_use().await {
                    eprintln!("redfish auth: {a:?}");
                }
                if (verbose || tofu)
                    && let Some(f) = r.fingerprint()
                {
                    eprintln!("certificate: {f}");
                }
            }
            _ => {}
        }
    }
}

async fn driver(a: &Args) -> anyhow::Result<(Box<dyn Bmc>, Used)> {
    let policy = Policy {
        timeout: Duration::from_secs_f64(a.timeout),
        retries: a.retries,
        settle: Duration::from_secs_f64(a.settle),
        ..Policy::default()
    };
    Ok(match a.driver {
        Driver::Ipmi => {
            let i = Arc::new(bmc_power::Ipmi::new(bmc_power::IpmiConfig {
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
                allow_insecure_auth: a.allow_insecure_auth,
                policy,
                ..bmc_power::IpmiConfig::default()
            })?);
            (Box::new(Shared(i.clone())), Used::Ipmi(i))
        }
        Driver::Redfish => {
            let tls = if a.insecure {
                bmc_power::Tls::InsecureSkipVerify
            } else if let Some(f) = a.tls_fingerprint {
                bmc_power::Tls::Fingerprint(f)
            } else if a.tofu {
                bmc_power::Tls::TrustOnFirstUse
            } else if let Some(p) = &a.ca {
                bmc_power::Tls::CustomCa(
                    std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                )
            } else {
                bmc_power::Tls::System
            };
            let r = Arc::new(bmc_power::Redfish::new(bmc_power::RedfishConfig {
                endpoint: a.address.clone(),
                username: a.user.clone(),
                password: a.password.clone(),
                system: a.system.clone(),
                tls,
                auth: match a.auth {
                    AuthMode::Auto => bmc_power::RedfishAuth::Auto,
                    AuthMode::Session => bmc_power::RedfishAuth::Session,
                    AuthMode::Basic => bmc_power::RedfishAuth::Basic,
                },
                policy,
            })?);
            (Box::new(Shared(r.clone())), Used::Redfish(r))
        }
        #[cfg(feature = "libvirt")]
        Driver::Libvirt => (
            Box::new(
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
            Used::Other,
        ),
        #[cfg(not(feature = "libvirt"))]
        Driver::Libvirt => anyhow::bail!("built without libvirt: add --features libvirt"),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (bmc, used) = driver(&a).await?;
    let result = run(&a, bmc.as_ref()).await;
    used.report(a.verbose, a.tofu).await;
    match result {
        Ok(()) => Ok(()),
        // Outcomes a script wants to tell apart from failures, with their own exit codes.
        Err(e @ bmc_power::Error::NotVerifiable { .. }) => {
            eprintln!("not verifiable: {e}");
            std::process::exit(3)
        }
        Err(e @ bmc_power::Error::NotApplied { .. }) => {
            eprintln!("the bmc lied: {e}");
            std::process::exit(4)
        }
        Err(e) => Err(e.into()),
    }
}

async fn run(a: &Args, bmc: &dyn Bmc) -> Result<(), bmc_power::Error> {
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
