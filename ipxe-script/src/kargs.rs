//! CoreOS and RHCOS kernel command lines, for every installer generation.
//!
//! Sources: coreos-installer `docs/getting-started.md` and `scripts/coreos-installer-service`
//! (the live generation), the `legacy` branch `dracut/30coreos-installer/parse-coreos.sh` (RHCOS
//! 4.1-4.5), fedora-coreos-docs `live-booting.adoc` (live PXE), and the seed runbook's
//! introspection dracut module (`coreos.inst.introspection_endpoint`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem};
use crate::token::Word;

/// Which installer the kernel and initramfs belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Generation {
    /// The shell installer initramfs of RHCOS 4.1-4.5: needs `coreos.inst=yes` and
    /// `coreos.inst.image_url`, takes bare device names (`sda`), has no live rootfs.
    Legacy,
    /// The live kernel, initramfs and rootfs of RHCOS 4.6+ and Fedora CoreOS, with the Rust
    /// coreos-installer: `/dev/sda`, `coreos.live.rootfs_url`, optional image URL.
    #[default]
    Live,
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Generation::Legacy => "legacy (RHCOS 4.1-4.5)",
            Generation::Live => "live (RHCOS 4.6+)",
        })
    }
}

/// What a kernel command line makes the machine do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// Install to disk with an Ignition config URL.
    Install(Generation),
    /// Install to disk, POSTing hardware details to an endpoint that answers with the config.
    Introspection(Generation),
    /// Run the live system from RAM with its own Ignition config; nothing is installed.
    LiveBoot,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Purpose::Install(Generation::Legacy) => f.write_str("legacy install (RHCOS 4.1-4.5)"),
            Purpose::Install(_) => f.write_str("live PXE install (RHCOS 4.6+)"),
            Purpose::Introspection(Generation::Legacy) => {
                f.write_str("introspection install (RHCOS 4.1-4.5)")
            }
            Purpose::Introspection(_) => f.write_str("introspection install (RHCOS 4.6+)"),
            Purpose::LiveBoot => f.write_str("live PXE boot"),
        }
    }
}

/// One kernel argument: `key` or `key=value`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelArg {
    key: String,
    value: Option<String>,
}

fn check_arg(text: &str) -> Result<(), Error> {
    Word::new(text)?;
    if let Some(at) = text.find('"') {
        return Err(Error::Unsafe {
            what: "kernel argument",
            value: text.to_owned(),
            problem: Problem::Quote { at },
        });
    }
    Ok(())
}

impl KernelArg {
    /// `key=value`, checked: no whitespace, quotes, control characters or unbalanced `${`.
    pub fn new(key: &str, value: Option<&str>) -> Result<Self, Error> {
        if key.is_empty() || key.contains('=') {
            return Err(Error::Unsafe {
                what: "kernel argument key",
                value: key.to_owned(),
                problem: key
                    .find('=')
                    .map_or(Problem::Empty, |at| Problem::Character { at }),
            });
        }
        let arg = KernelArg {
            key: key.to_owned(),
            value: value.map(str::to_owned),
        };
        check_arg(&arg.to_string())?;
        Ok(arg)
    }

    /// Splits `key=value` at the first `=`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text.split_once('=') {
            Some((k, v)) => KernelArg::new(k, Some(v)),
            None => KernelArg::new(text, None),
        }
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, if the argument has an `=`.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

impl fmt::Display for KernelArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// A checked kernel command line, in order. Build one with [`CoreosArgs::build`] or
/// [`KernelArgs::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KernelArgs {
    args: Vec<KernelArg>,
    purpose: Option<Purpose>,
}

impl KernelArgs {
    /// Splits a command line on whitespace and checks every argument.
    ///
    /// `rd.break` is refused here too, so a parsed line can be passed on safely.
    pub fn parse(line: &str) -> Result<Self, Error> {
        let args = line
            .split_whitespace()
            .map(KernelArg::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(bad) = args.iter().find(|a| is_forbidden(a.key())) {
            return Err(Error::ForbiddenArg {
                arg: bad.to_string(),
            });
        }
        Ok(KernelArgs {
            args,
            purpose: None,
        })
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &KernelArg> {
        self.args.iter()
    }

    /// The number of arguments.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// The value of the last argument named `key`: `Some(None)` for a bare flag.
    pub fn get(&self, key: &str) -> Option<Option<&str>> {
        self.args
            .iter()
            .rev()
            .find(|a| a.key == key)
            .map(KernelArg::value)
    }

    /// What the arguments make the machine do, when they came from [`CoreosArgs::build`].
    pub fn purpose(&self) -> Option<Purpose> {
        self.purpose
    }

    /// The arguments as iPXE tokens, for a `kernel` command.
    pub fn to_words(&self) -> Vec<Word> {
        // Every argument was checked as a token when it was made.
        self.args
            .iter()
            .map(|a| Word::lit(&a.to_string()))
            .collect()
    }

    fn push(&mut self, key: &str, value: Option<&str>) -> Result<(), Error> {
        self.args.push(KernelArg::new(key, value)?);
        Ok(())
    }
}

impl fmt::Display for KernelArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Network configuration for the initramfs (dracut's `ip=`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ip {
    /// `ip=dhcp` on every interface.
    Dhcp,
    /// `ip=dhcp6`: DHCPv6 only, for an IPv6-only network.
    Dhcp6,
    /// `ip=dhcp,dhcp6`: DHCPv4 and DHCPv6 on every interface, for a dual-stack network
    /// (NetworkManager's initrd generator reads the comma-separated list; CoreOS's initramfs
    /// treats it as plain DHCP when deciding whether to keep the network configuration).
    DhcpAndDhcp6,
    /// `ip=<interface>:dhcp`.
    DhcpOn {
        /// The interface, such as `ens3`.
        interface: String,
    },
    /// `ip=<address>::<gateway>:<netmask>:<hostname>:<interface>:none`.
    Static {
        /// The host's address.
        address: Ipv4Addr,
        /// The default gateway.
        gateway: Option<Ipv4Addr>,
        /// The netmask, such as 255.255.255.0.
        netmask: Ipv4Addr,
        /// The host name.
        hostname: Option<String>,
        /// The interface, such as `ens3`.
        interface: Option<String>,
    },
}

fn check_name(arg: &'static str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidValue {
            arg,
            value: value.to_owned(),
        })
    }
}

impl Ip {
    fn value(&self) -> Result<String, Error> {
        Ok(match self {
            Ip::Dhcp => "dhcp".to_owned(),
            Ip::Dhcp6 => "dhcp6".to_owned(),
            Ip::DhcpAndDhcp6 => "dhcp,dhcp6".to_owned(),
            Ip::DhcpOn { interface } => {
                check_name("ip", interface)?;
                format!("{interface}:dhcp")
            }
            Ip::Static {
                address,
                gateway,
                netmask,
                hostname,
                interface,
            } => {
                for v in [hostname, interface].into_iter().flatten() {
                    check_name("ip", v)?;
                }
                format!(
                    "{address}::{}:{netmask}:{}:{}:none",
                    gateway.map(|g| g.to_string()).unwrap_or_default(),
                    hostname.as_deref().unwrap_or(""),
                    interface.as_deref().unwrap_or("")
                )
            }
        })
    }
}

/// The inputs of a CoreOS/RHCOS kernel command line. Plain data: set the fields, then
/// [`build`](CoreosArgs::build) checks them against each other and against the generation.
///
/// What is built depends on the fields that are set:
/// - `install_dev` and `ignition_url`: an install ([`Purpose::Install`]);
/// - `install_dev` and `introspection_endpoint`: the seed's introspection install, with no
///   Ignition URL ([`Purpose::Introspection`]);
/// - only `live_ignition_url` (live generation): a live boot ([`Purpose::LiveBoot`]).
///
/// `rd.break` is never emitted; passing it in `extra` is an error.
///
/// ```
/// use ipxe_script::{CoreosArgs, Generation};
/// let args = CoreosArgs {
///     generation: Generation::Legacy,
///     install_dev: Some("/dev/sda".into()),
///     image_url: Some("http://10.0.0.1/metal.raw.gz".into()),
///     ignition_url: Some("http://10.0.0.1/worker.ign".into()),
///     ..Default::default()
/// }
/// .build()?;
/// assert_eq!(
///     args.to_string(),
///     "coreos.inst=yes coreos.inst.install_dev=sda \
///      coreos.inst.image_url=http://10.0.0.1/metal.raw.gz \
///      coreos.inst.ignition_url=http://10.0.0.1/worker.ign"
/// );
/// # Ok::<(), ipxe_script::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CoreosArgs {
    /// The installer generation.
    pub generation: Generation,
    /// `coreos.inst.install_dev`: written bare (`sda`) for the legacy generation and as a
    /// `/dev/` path for the live one, whichever form is given.
    pub install_dev: Option<String>,
    /// `coreos.inst.image_url`: the metal image (required by the legacy generation).
    pub image_url: Option<String>,
    /// `coreos.inst.ignition_url`: the config for the installed system.
    pub ignition_url: Option<String>,
    /// `coreos.inst.introspection_endpoint`: where the seed's initramfs POSTs `ghwc` JSON; the
    /// answer is the config. Excludes `ignition_url`.
    pub introspection_endpoint: Option<String>,
    /// `ignition.config.url` (with `ignition.firstboot ignition.platform.id=metal`): the config
    /// for the live system itself.
    pub live_ignition_url: Option<String>,
    /// `coreos.live.rootfs_url`: the live rootfs image (live generation; required there).
    pub rootfs_url: Option<String>,
    /// `coreos.inst.insecure`: skip the image signature check (live generation).
    pub insecure: bool,
    /// `coreos.inst.platform_id`, such as `metal` (the default) or `qemu`.
    pub platform_id: Option<String>,
    /// `coreos.inst.save_partlabel`: partition label globs to keep (live generation).
    pub save_partlabel: Vec<String>,
    /// `coreos.inst.save_partindex`: partition numbers or ranges (`5`, `6-`) to keep.
    pub save_partindex: Vec<String>,
    /// `coreos.inst.skip_reboot`: stay in the installer after writing the disk.
    pub skip_reboot: bool,
    /// `coreos.inst.stream`: the stream to install from (live generation).
    pub stream: Option<String>,
    /// `ip=` (with `rd.neednet=1`).
    pub network: Option<Ip>,
    /// `nameserver=`.
    pub nameservers: Vec<IpAddr>,
    /// `console=` entries, such as `tty0` and `ttyS0,115200n8`.
    pub consoles: Vec<String>,
    /// Any other arguments, appended last. Keys with a typed field, and `rd.break`, are refused.
    pub extra: Vec<String>,
}

/// Keys that have a typed field (or that the scripts set themselves, like `initrd`).
const TYPED_KEYS: &[&str] = &[
    "initrd",
    "ip",
    "nameserver",
    "rd.neednet",
    "console",
    "coreos.inst",
    "coreos.inst.install_dev",
    "coreos.inst.image_url",
    "coreos.inst.ignition_url",
    "coreos.inst.introspection_endpoint",
    "coreos.inst.insecure",
    "coreos.inst.platform_id",
    "coreos.inst.save_partlabel",
    "coreos.inst.save_partindex",
    "coreos.inst.skip_reboot",
    "coreos.inst.stream",
    "coreos.live.rootfs_url",
    "ignition.firstboot",
    "ignition.platform.id",
    "ignition.config.url",
];

fn is_forbidden(key: &str) -> bool {
    key == "rd.break" || key.starts_with("rd.break.")
}

fn device(dev: &str, generation: Generation) -> Result<String, Error> {
    let invalid = || Error::InvalidDevice {
        device: dev.to_owned(),
        generation,
    };
    if dev.is_empty() {
        return Err(invalid());
    }
    // A setting expansion is resolved by iPXE at boot: pass it through.
    if dev.starts_with("${") {
        return Ok(dev.to_owned());
    }
    match generation {
        // parse-coreos.sh does DEST_DEV=/dev/$DEST_DEV.
        Generation::Legacy => match dev.strip_prefix("/dev/") {
            Some(rest) if !rest.is_empty() => Ok(rest.to_owned()),
            Some(_) => Err(invalid()),
            None if dev.starts_with('/') => Err(invalid()),
            None => Ok(dev.to_owned()),
        },
        // A value without `/` is deprecated: the service warns and prepends /dev/.
        Generation::Live => match dev.strip_prefix("/dev/") {
            Some(rest) if !rest.is_empty() => Ok(dev.to_owned()),
            Some(_) => Err(invalid()),
            None if dev.starts_with('/') => Err(invalid()),
            None => Ok(format!("/dev/{dev}")),
        },
    }
}

fn unsupported(arg: &'static str, generation: Generation) -> Error {
    Error::Unsupported { arg, generation }
}

impl CoreosArgs {
    /// The seed's legacy install: RHCOS 4.1-4.5 installer, image and Ignition URLs.
    pub fn legacy_install(install_dev: &str, image_url: &str, ignition_url: &str) -> Self {
        CoreosArgs {
            generation: Generation::Legacy,
            install_dev: Some(install_dev.to_owned()),
            image_url: Some(image_url.to_owned()),
            ignition_url: Some(ignition_url.to_owned()),
            ..Default::default()
        }
    }

    /// A live PXE install (RHCOS 4.6+): the live rootfs URL, the disk and the Ignition URL.
    pub fn live_install(rootfs_url: &str, install_dev: &str, ignition_url: &str) -> Self {
        CoreosArgs {
            generation: Generation::Live,
            rootfs_url: Some(rootfs_url.to_owned()),
            install_dev: Some(install_dev.to_owned()),
            ignition_url: Some(ignition_url.to_owned()),
            ..Default::default()
        }
    }

    /// The seed's introspection install: the endpoint instead of an Ignition URL. The legacy
    /// generation also needs [`image_url`](CoreosArgs::image_url), the live one
    /// [`rootfs_url`](CoreosArgs::rootfs_url).
    pub fn introspection(generation: Generation, install_dev: &str, endpoint: &str) -> Self {
        CoreosArgs {
            generation,
            install_dev: Some(install_dev.to_owned()),
            introspection_endpoint: Some(endpoint.to_owned()),
            ..Default::default()
        }
    }

    /// A live boot that provisions the live system itself (nothing is installed).
    pub fn live_boot(rootfs_url: &str, ignition_url: &str) -> Self {
        CoreosArgs {
            generation: Generation::Live,
            rootfs_url: Some(rootfs_url.to_owned()),
            live_ignition_url: Some(ignition_url.to_owned()),
            ..Default::default()
        }
    }

    /// Checks the fields against each other and writes the command line.
    pub fn build(&self) -> Result<KernelArgs, Error> {
        let g = self.generation;
        let purpose = self.purpose()?;
        let purpose_name = match purpose {
            Purpose::Install(Generation::Legacy) => "legacy install",
            Purpose::Install(_) => "live install",
            Purpose::Introspection(_) => "introspection install",
            Purpose::LiveBoot => "live boot",
        };

        if g == Generation::Legacy {
            let live_only: [(&'static str, bool); 6] = [
                ("coreos.live.rootfs_url", self.rootfs_url.is_some()),
                ("ignition.config.url", self.live_ignition_url.is_some()),
                ("coreos.inst.insecure", self.insecure),
                ("coreos.inst.stream", self.stream.is_some()),
                (
                    "coreos.inst.save_partlabel",
                    !self.save_partlabel.is_empty(),
                ),
                (
                    "coreos.inst.save_partindex",
                    !self.save_partindex.is_empty(),
                ),
            ];
            if let Some((arg, _)) = live_only.iter().find(|(_, set)| *set) {
                return Err(unsupported(arg, g));
            }
            if self.image_url.is_none() {
                return Err(Error::Missing {
                    arg: "coreos.inst.image_url",
                    purpose: purpose_name,
                });
            }
        } else if self.rootfs_url.is_none() {
            return Err(Error::Missing {
                arg: "coreos.live.rootfs_url",
                purpose: purpose_name,
            });
        }

        for glob in &self.save_partlabel {
            if glob.is_empty() || glob.contains(',') {
                return Err(Error::InvalidValue {
                    arg: "coreos.inst.save_partlabel",
                    value: glob.clone(),
                });
            }
        }
        for index in &self.save_partindex {
            if !is_partindex(index) {
                return Err(Error::InvalidValue {
                    arg: "coreos.inst.save_partindex",
                    value: index.clone(),
                });
            }
        }
        if let Some(p) = &self.platform_id {
            check_name("coreos.inst.platform_id", p)?;
        }

        let mut out = KernelArgs {
            args: Vec::new(),
            purpose: Some(purpose),
        };
        if let Some(ip) = &self.network {
            out.push("ip", Some(&ip.value()?))?;
        }
        for ns in &self.nameservers {
            out.push("nameserver", Some(&ns.to_string()))?;
        }
        if self.network.is_some() {
            out.push("rd.neednet", Some("1"))?;
        }
        for c in &self.consoles {
            out.push("console", Some(c))?;
        }
        if let Some(u) = &self.rootfs_url {
            out.push("coreos.live.rootfs_url", Some(u))?;
        }
        if let Some(u) = &self.live_ignition_url {
            out.push("ignition.firstboot", None)?;
            out.push("ignition.platform.id", Some("metal"))?;
            out.push("ignition.config.url", Some(u))?;
        }
        if g == Generation::Legacy {
            out.push("coreos.inst", Some("yes"))?;
        }
        if let Some(dev) = &self.install_dev {
            out.push("coreos.inst.install_dev", Some(&device(dev, g)?))?;
        }
        if let Some(u) = &self.image_url {
            out.push("coreos.inst.image_url", Some(u))?;
        }
        if let Some(u) = &self.ignition_url {
            out.push("coreos.inst.ignition_url", Some(u))?;
        }
        if let Some(u) = &self.introspection_endpoint {
            out.push("coreos.inst.introspection_endpoint", Some(u))?;
        }
        if self.insecure {
            out.push("coreos.inst.insecure", Some("yes"))?;
        }
        if let Some(p) = &self.platform_id {
            out.push("coreos.inst.platform_id", Some(p))?;
        }
        if let Some(s) = &self.stream {
            out.push("coreos.inst.stream", Some(s))?;
        }
        if !self.save_partlabel.is_empty() {
            out.push(
                "coreos.inst.save_partlabel",
                Some(&self.save_partlabel.join(",")),
            )?;
        }
        if !self.save_partindex.is_empty() {
            out.push(
                "coreos.inst.save_partindex",
                Some(&self.save_partindex.join(",")),
            )?;
        }
        if self.skip_reboot {
            out.push("coreos.inst.skip_reboot", Some("yes"))?;
        }
        for extra in &self.extra {
            let arg = KernelArg::parse(extra)?;
            if is_forbidden(arg.key()) {
                return Err(Error::ForbiddenArg { arg: extra.clone() });
            }
            if TYPED_KEYS.contains(&arg.key()) {
                return Err(Error::DuplicateArg {
                    key: arg.key().to_owned(),
                });
            }
            out.args.push(arg);
        }
        Ok(out)
    }

    fn purpose(&self) -> Result<Purpose, Error> {
        let g = self.generation;
        if self.ignition_url.is_some() && self.introspection_endpoint.is_some() {
            return Err(Error::Conflict {
                arg: "coreos.inst.introspection_endpoint",
                other: "coreos.inst.ignition_url",
            });
        }
        // A live introspection install may leave the disk (and image) to the answer: the
        // deployment's hook hands coreos-installer a config file with what introspection chose.
        if self.install_dev.is_none()
            && self.introspection_endpoint.is_some()
            && g == Generation::Live
        {
            return Ok(Purpose::Introspection(g));
        }
        if self.install_dev.is_none() {
            if self.live_ignition_url.is_none() {
                return Err(Error::Missing {
                    arg: "coreos.inst.install_dev",
                    purpose: "install",
                });
            }
            if g == Generation::Legacy {
                return Err(unsupported("ignition.config.url", g));
            }
            let install_only: [(&'static str, bool); 9] = [
                ("coreos.inst.image_url", self.image_url.is_some()),
                ("coreos.inst.ignition_url", self.ignition_url.is_some()),
                (
                    "coreos.inst.introspection_endpoint",
                    self.introspection_endpoint.is_some(),
                ),
                ("coreos.inst.insecure", self.insecure),
                ("coreos.inst.platform_id", self.platform_id.is_some()),
                ("coreos.inst.stream", self.stream.is_some()),
                (
                    "coreos.inst.save_partlabel",
                    !self.save_partlabel.is_empty(),
                ),
                (
                    "coreos.inst.save_partindex",
                    !self.save_partindex.is_empty(),
                ),
                ("coreos.inst.skip_reboot", self.skip_reboot),
            ];
            if let Some((arg, _)) = install_only.iter().find(|(_, set)| *set) {
                return Err(Error::Conflict {
                    arg,
                    other: "a live boot without coreos.inst.install_dev",
                });
            }
            return Ok(Purpose::LiveBoot);
        }
        if self.introspection_endpoint.is_some() {
            return Ok(Purpose::Introspection(g));
        }
        if self.ignition_url.is_none() {
            return Err(Error::Missing {
                arg: "coreos.inst.ignition_url",
                purpose: "install",
            });
        }
        Ok(Purpose::Install(g))
    }
}

/// `N`, `N-M`, `N-` or `-M`, as coreos-installer's `--save-partindex` takes them.
fn is_partindex(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        None => digits(s),
        Some((a, b)) => (digits(a) || a.is_empty()) && (digits(b) || b.is_empty()) && s != "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: CoreosArgs, expected: Result<&str, Error>) {
        let got = args.build().map(|a| a.to_string());
        assert_eq!(got, expected.map(str::to_owned));
    }

    const IMG: &str = "http://10.0.0.1/metal.raw.gz";
    const IGN: &str = "http://10.0.0.1/worker.ign";
    const ROOTFS: &str = "http://10.0.0.1/rootfs.img";

    #[test]
    fn generations() {
        check(
            CoreosArgs::legacy_install("sda", IMG, IGN),
            Ok("coreos.inst=yes coreos.inst.install_dev=sda \
                coreos.inst.image_url=http://10.0.0.1/metal.raw.gz \
                coreos.inst.ignition_url=http://10.0.0.1/worker.ign"),
        );
        check(
            CoreosArgs::live_install(ROOTFS, "sda", IGN),
            Ok("coreos.live.rootfs_url=http://10.0.0.1/rootfs.img \
                coreos.inst.install_dev=/dev/sda coreos.inst.ignition_url=http://10.0.0.1/worker.ign"),
        );
        check(
            CoreosArgs::live_boot(ROOTFS, IGN),
            Ok(
                "coreos.live.rootfs_url=http://10.0.0.1/rootfs.img ignition.firstboot \
                ignition.platform.id=metal ignition.config.url=http://10.0.0.1/worker.ign",
            ),
        );
        check(
            CoreosArgs {
                image_url: Some(IMG.into()),
                ..CoreosArgs::introspection(Generation::Legacy, "/dev/vda", "http://h/i")
            },
            Ok("coreos.inst=yes coreos.inst.install_dev=vda \
                coreos.inst.image_url=http://10.0.0.1/metal.raw.gz \
                coreos.inst.introspection_endpoint=http://h/i"),
        );

        // A live introspection install may leave the disk to the introspection answer; the
        // legacy installer cannot take it from anywhere but the command line.
        check(
            CoreosArgs {
                install_dev: None,
                rootfs_url: Some(ROOTFS.into()),
                ..CoreosArgs::introspection(Generation::Live, "/dev/vda", "http://h/i")
            },
            Ok("coreos.live.rootfs_url=http://10.0.0.1/rootfs.img \
                coreos.inst.introspection_endpoint=http://h/i"),
        );
        assert!(
            CoreosArgs {
                install_dev: None,
                image_url: Some(IMG.into()),
                ..CoreosArgs::introspection(Generation::Legacy, "/dev/vda", "http://h/i")
            }
            .build()
            .is_err()
        );
    }

    #[test]
    fn devices() {
        let dev = |d: &str, g| device(d, g);
        assert_eq!(dev("/dev/sda", Generation::Legacy).unwrap(), "sda");
        assert_eq!(
            dev("/dev/disk/by-id/wwn-1", Generation::Legacy).unwrap(),
            "disk/by-id/wwn-1"
        );
        assert_eq!(dev("sda", Generation::Live).unwrap(), "/dev/sda");
        assert_eq!(dev("${dev}", Generation::Live).unwrap(), "${dev}");
        assert!(dev("/tmp/x", Generation::Live).is_err());
        assert!(dev("/dev/", Generation::Legacy).is_err());
        assert!(dev("", Generation::Legacy).is_err());
    }

    #[test]
    fn rejections() {
        let mut a = CoreosArgs::live_install(ROOTFS, "sda", IGN);
        a.extra = vec!["rd.break=mount".into()];
        check(
            a.clone(),
            Err(Error::ForbiddenArg {
                arg: "rd.break=mount".into(),
            }),
        );
        a.extra = vec!["rd.break".into()];
        assert!(matches!(a.build(), Err(Error::ForbiddenArg { .. })));
        a.extra = vec!["console=ttyS0".into()];
        assert!(matches!(a.build(), Err(Error::DuplicateArg { .. })));
        a.extra = vec!["two words".into()];
        assert!(matches!(a.build(), Err(Error::Unsafe { .. })));
        a.extra = vec!["quiet".into(), "x=\"y\"".into()];
        assert!(matches!(a.build(), Err(Error::Unsafe { .. })));

        let mut l = CoreosArgs::legacy_install("sda", IMG, IGN);
        l.rootfs_url = Some(ROOTFS.into());
        assert_eq!(
            l.build(),
            Err(Error::Unsupported {
                arg: "coreos.live.rootfs_url",
                generation: Generation::Legacy
            })
        );
        let mut l = CoreosArgs::legacy_install("sda", IMG, IGN);
        l.image_url = None;
        assert!(matches!(l.build(), Err(Error::Missing { .. })));
        let mut l = CoreosArgs::legacy_install("sda", IMG, IGN);
        l.introspection_endpoint = Some("http://h/i".into());
        assert!(matches!(l.build(), Err(Error::Conflict { .. })));
        let mut v = CoreosArgs::live_install(ROOTFS, "sda", IGN);
        v.rootfs_url = None;
        assert!(matches!(v.build(), Err(Error::Missing { .. })));
        let mut v = CoreosArgs::live_boot(ROOTFS, IGN);
        v.skip_reboot = true;
        assert!(matches!(v.build(), Err(Error::Conflict { .. })));
        let mut v = CoreosArgs::live_install(ROOTFS, "sda", "http://x/${mac");
        assert!(matches!(v.build(), Err(Error::Unsafe { .. })));
        v.ignition_url = Some(IGN.into());
        v.save_partindex = vec!["x".into()];
        assert!(matches!(v.build(), Err(Error::InvalidValue { .. })));
        assert!(KernelArgs::parse("quiet rd.break=pre-mount").is_err());
    }

    #[test]
    fn everything_live() {
        let args = CoreosArgs {
            network: Some(Ip::Static {
                address: Ipv4Addr::new(10, 0, 0, 5),
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                hostname: Some("master-0".into()),
                interface: Some("ens3".into()),
            }),
            nameservers: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
            consoles: vec!["tty0".into(), "ttyS0,115200n8".into()],
            insecure: true,
            platform_id: Some("metal".into()),
            stream: Some("stable".into()),
            save_partlabel: vec!["data*".into(), "keep".into()],
            save_partindex: vec!["5".into(), "6-".into()],
            skip_reboot: true,
            image_url: Some(IMG.into()),
            extra: vec!["quiet".into()],
            ..CoreosArgs::live_install(ROOTFS, "/dev/nvme0n1", IGN)
        };
        check(
            args,
            Ok(
                "ip=10.0.0.5::10.0.0.1:255.255.255.0:master-0:ens3:none nameserver=10.0.0.1 \
                rd.neednet=1 console=tty0 console=ttyS0,115200n8 \
                coreos.live.rootfs_url=http://10.0.0.1/rootfs.img \
                coreos.inst.install_dev=/dev/nvme0n1 \
                coreos.inst.image_url=http://10.0.0.1/metal.raw.gz \
                coreos.inst.ignition_url=http://10.0.0.1/worker.ign coreos.inst.insecure=yes \
                coreos.inst.platform_id=metal coreos.inst.stream=stable \
                coreos.inst.save_partlabel=data*,keep coreos.inst.save_partindex=5,6- \
                coreos.inst.skip_reboot=yes quiet",
            ),
        );
    }

    #[test]
    fn ipv6_networks_and_bracketed_urls() {
        // An IPv6-only network: DHCPv6 in the initramfs, URLs with bracketed addresses.
        let v6 = |network| CoreosArgs {
            network: Some(network),
            ..CoreosArgs::live_install(
                "http://[fd00:22::1]:8080/rootfs.img",
                "/dev/sda",
                "http://[fd00:22::1]:8080/ignition?mac=52-54-00-12-60-01",
            )
        };
        check(
            v6(Ip::Dhcp6),
            Ok("ip=dhcp6 rd.neednet=1 \
                coreos.live.rootfs_url=http://[fd00:22::1]:8080/rootfs.img \
                coreos.inst.install_dev=/dev/sda \
                coreos.inst.ignition_url=http://[fd00:22::1]:8080/ignition?mac=52-54-00-12-60-01"),
        );
        // Dual-stack: both DHCPs, as one `ip=` (NetworkManager's initrd generator).
        let args = v6(Ip::DhcpAndDhcp6).build().unwrap();
        assert_eq!(args.get("ip"), Some(Some("dhcp,dhcp6")));
        assert_eq!(args.get("rd.neednet"), Some(Some("1")));
        // The command line parses back to the same arguments.
        assert_eq!(
            KernelArgs::parse(&args.to_string()).unwrap().to_string(),
            args.to_string()
        );
    }

    #[test]
    fn partindex() {
        for ok in ["1", "5-7", "6-", "-3"] {
            assert!(is_partindex(ok), "{ok}");
        }
        for bad in ["", "-", "a", "1-2-3", "1,2"] {
            assert!(!is_partindex(bad), "{bad}");
        }
    }
}
