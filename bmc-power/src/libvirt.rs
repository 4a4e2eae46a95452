//! libvirt domains behind the same trait: power through create/destroy/shutdown/reset, boot
//! device by rewriting the inactive domain XML's `<os><boot dev>`.

use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::error::ErrorNumber;

use crate::bmc::{Bmc, BmcFuture, check_boot};
use crate::error::{Error, Refusal, Result};
use crate::types::{
    BootDevice, BootMode, BootOverride, Persistence, Policy, PowerAction, PowerState,
};

/// Everything the libvirt driver needs.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Connection URI, e.g. `qemu:///system` or `test:///default`.
    pub uri: String,
    /// The domain name.
    pub domain: String,
    /// Settle times; each libvirt call is bounded by [`Policy::unreachable_bound`] and not
    /// retried.
    pub policy: Policy,
}

/// A libvirt domain as a "BMC".
///
/// # Panics
///
/// Dropping the last handle closes the libvirt connection; the `virt` crate panics if
/// `virConnectClose` fails (it does not for the local and test drivers).
pub struct Libvirt {
    config: Config,
    conn: Arc<Connect>,
}

impl std::fmt::Debug for Libvirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Libvirt")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn virt_err(operation: &'static str, e: virt::error::Error) -> Error {
    let code = e.code();
    match code {
        virt::enumutil::Enum::Known(ErrorNumber::NoSupport)
        | virt::enumutil::Enum::Known(ErrorNumber::OperationUnsupported) => Error::Unsupported {
            operation,
            message: e.message().to_string(),
        },
        virt::enumutil::Enum::Known(ErrorNumber::AuthFailed)
        | virt::enumutil::Enum::Known(ErrorNumber::AuthCancelled)
        | virt::enumutil::Enum::Known(ErrorNumber::AuthUnavailable) => Error::Authentication {
            address: String::new(),
            message: e.message().to_string(),
        },
        virt::enumutil::Enum::Known(ErrorNumber::NoDomain) => Error::Config {
            message: e.message().to_string(),
        },
        _ => Error::Refused {
            operation,
            refusal: Refusal::Libvirt(format!("{code:?}")),
            message: e.message().to_string(),
        },
    }
}

/// libvirt `<boot dev>` values.
fn dev_name(d: BootDevice) -> Option<&'static str> {
    match d {
        BootDevice::Pxe => Some("network"),
        BootDevice::Disk => Some("hd"),
        BootDevice::Cdrom => Some("cdrom"),
        BootDevice::None | BootDevice::UefiHttp | BootDevice::BiosSetup => None,
    }
}

fn xml_err(e: impl std::fmt::Display) -> Error {
    Error::protocol(format!("domain xml: {e}"))
}

/// Read the boot override from domain XML: the first `<os><boot dev>`, and the firmware
/// (`<os firmware='efi'>` or a `<loader>` marks UEFI).
pub(crate) fn read_boot_xml(xml: &str) -> Result<BootOverride> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut device = None;
    let mut uefi = false;
    loop {
        let ev = r.read_event().map_err(xml_err)?;
        let (e, empty) = match &ev {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(e) = e else { continue };
        let name = e.name().0.to_string();
        let parent = path.last().map(String::as_str);
        if name == "os" && path.len() == 1 {
            uefi |= attr(e, "firmware").as_deref() == Some("efi");
        }
        if parent == Some("os") && name == "loader" {
            uefi = true;
        }
        if parent == Some("os") && name == "boot" && device.is_none() {
            device = Some(match attr(e, "dev").as_deref() {
                Some("network") => BootDevice::Pxe,
                Some("hd") => BootDevice::Disk,
                Some("cdrom") => BootDevice::Cdrom,
                _ => BootDevice::None,
            });
        }
        if !empty {
            path.push(name);
        }
    }
    Ok(BootOverride {
        device: device.unwrap_or(BootDevice::Disk),
        // The inactive XML applies to every start until changed.
        persistence: Persistence::Persistent,
        mode: Some(if uefi {
            BootMode::Uefi
        } else {
            BootMode::Legacy
        }),
    })
}

fn attr(e: &BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.0 == key)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Rewrite domain XML so that `<os>` holds exactly one `<boot dev=dev/>`; per-device
/// `<boot order>` elements are dropped (libvirt refuses both kinds together).
pub(crate) fn rewrite_boot_xml(xml: &str, dev: &str) -> Result<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut w = quick_xml::Writer::new(Vec::new());
    let mut depth_in_boot = 0usize;
    let mut path: Vec<String> = Vec::new();
    loop {
        let ev = r.read_event().map_err(xml_err)?;
        match &ev {
            Event::Eof => break,
            Event::Empty(e) if e.name().0 == "boot" => continue,
            Event::Start(e) if e.name().0 == "boot" || depth_in_boot > 0 => {
                depth_in_boot += 1;
                continue;
            }
            Event::End(_) if depth_in_boot > 0 => {
                depth_in_boot -= 1;
                continue;
            }
            Event::End(e) if e.name().0 == "os" && path.len() == 2 => {
                let mut b = BytesStart::new("boot");
                b.push_attribute(("dev", dev));
                w.write_event(Event::Empty(b)).map_err(xml_err)?;
                path.pop();
            }
            Event::Start(e) => path.push(e.name().0.to_string()),
            Event::End(_) => {
                path.pop();
            }
            _ if depth_in_boot > 0 => continue,
            _ => {}
        }
        w.write_event(ev).map_err(xml_err)?;
    }
    String::from_utf8(w.into_inner()).map_err(xml_err)
}

impl Libvirt {
    /// Connect to `config.uri` (blocking, once) and check the domain exists.
    pub async fn connect(config: Config) -> Result<Self> {
        let uri = config.uri.clone();
        let name = config.domain.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connect> {
            // libvirt's default error handler prints every error to stderr; errors come back
            // as values here.
            virt::error::clear_error_callback();
            let conn = Connect::open(Some(&uri)).map_err(|e| match virt_err("connect", e) {
                Error::Refused { message, .. } => Error::Transport {
                    address: uri.clone(),
                    message,
                },
                other => other,
            })?;
            conn.lookup_domain_by_name(&name)
                .map_err(|e| virt_err("lookup domain", e))?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::protocol(format!("libvirt task failed: {e}")))??;
        Ok(Libvirt {
            config,
            conn: Arc::new(conn),
        })
    }

    /// Run `f` on the domain in a blocking task, bounded by
    /// [`Policy::unreachable_bound`] (a remote `qemu+ssh://` connection can hang; the
    /// blocking call itself cannot be cancelled, but the caller gets its answer in time).
    async fn with_domain<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connect, &Domain) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let name = self.config.domain.clone();
        let bound = self.config.policy.unreachable_bound();
        let task = tokio::task::spawn_blocking(move || {
            let dom = conn
                .lookup_domain_by_name(&name)
                .map_err(|e| virt_err("lookup domain", e))?;
            f(&conn, &dom)
        });
        match tokio::time::timeout(bound, task).await {
            Ok(joined) => {
                joined.map_err(|e| Error::protocol(format!("libvirt task failed: {e}")))?
            }
            Err(_) => Err(Error::Timeout {
                address: self.config.uri.clone(),
                after: bound,
                message: "libvirt call did not return".into(),
            }),
        }
    }

    async fn status(&self) -> Result<PowerState> {
        self.with_domain(|_, d| {
            let (state, _) = d.state().map_err(|e| virt_err("domain state", e))?;
            Ok(match state.unwrap_or(DomainState::NoState) {
                DomainState::Running
                | DomainState::Blocked
                | DomainState::Paused
                | DomainState::Shutdown
                | DomainState::PMSuspended => PowerState::On,
                DomainState::Shutoff | DomainState::Crashed | DomainState::NoState => {
                    PowerState::Off
                }
            })
        })
        .await
    }

    async fn do_power(&self, action: PowerAction) -> Result<PowerState> {
        let now = self.status().await?;
        self.with_domain(move |_, d| {
            let on = |d: &Domain| {
                d.create()
                    .map(drop)
                    .map_err(|e| virt_err("domain create", e))
            };
            let off = |d: &Domain| d.destroy().map_err(|e| virt_err("domain destroy", e));
            match (action, now) {
                (PowerAction::On, PowerState::Off) => on(d),
                (PowerAction::Off, PowerState::On) => off(d),
                (PowerAction::SoftOff, PowerState::On) => {
                    d.shutdown().map_err(|e| virt_err("domain shutdown", e))
                }
                // A domain picks up its (rewritten) inactive XML only on a fresh start, so reset
                // and cycle are destroy + create (virDomainReset would keep the old boot order).
                (PowerAction::Cycle | PowerAction::Reset, PowerState::On) => {
                    off(d).and_then(|()| on(d))
                }
                (PowerAction::Cycle | PowerAction::Reset, PowerState::Off) => on(d),
                _ => Ok(()),
            }
        })
        .await?;
        crate::bmc::settle(
            &self.config.policy,
            "power",
            action.expected_state(),
            || self.status(),
        )
        .await
    }

    async fn read_boot(&self) -> Result<BootOverride> {
        let xml = self
            .with_domain(|_, d| {
                d.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                    .map_err(|e| virt_err("domain xml", e))
            })
            .await?;
        read_boot_xml(&xml)
    }

    async fn do_set_boot(&self, boot: BootOverride) -> Result<BootOverride> {
        let dev = dev_name(boot.device).ok_or_else(|| Error::Unsupported {
            operation: "set boot device",
            message: format!("libvirt has no <boot dev> for {}", boot.device),
        })?;
        let current = self.read_boot().await?;
        if boot.mode.is_some() && boot.mode != current.mode {
            return Err(Error::Unsupported {
                operation: "set boot device",
                message: "switching a domain between bios and uefi firmware is not done here"
                    .into(),
            });
        }
        self.with_domain(move |conn, d| {
            let xml = d
                .xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(|e| virt_err("domain xml", e))?;
            let new = rewrite_boot_xml(&xml, dev)?;
            conn.define_domain_xml(&new)
                .map(drop)
                .map_err(|e| virt_err("define domain", e))
        })
        .await?;
        let actual = self.read_boot().await?;
        check_boot(&boot, &actual)?;
        Ok(actual)
    }
}

impl Bmc for Libvirt {
    fn power_status(&self) -> BmcFuture<'_, PowerState> {
        Box::pin(self.status())
    }

    fn power(&self, action: PowerAction) -> BmcFuture<'_, PowerState> {
        Box::pin(self.do_power(action))
    }

    fn set_boot(&self, boot: BootOverride) -> BmcFuture<'_, BootOverride> {
        Box::pin(self.do_set_boot(boot))
    }

    fn boot(&self) -> BmcFuture<'_, BootOverride> {
        Box::pin(self.read_boot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOM: &str = r#"<domain type='test'>
  <name>vm</name>
  <os>
    <type arch='x86_64'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <interface type='network'><source network='default'/><boot order='1'/></interface>
  </devices>
</domain>"#;

    #[test]
    fn rewrite_and_read_back() {
        assert_eq!(read_boot_xml(DOM).unwrap().device, BootDevice::Disk);
        let x = rewrite_boot_xml(DOM, "network").unwrap();
        assert_eq!(x.matches("<boot").count(), 1, "{x}");
        assert!(x.contains("<boot dev=\"network\"/></os>"), "{x}");
        let b = read_boot_xml(&x).unwrap();
        assert_eq!(b.device, BootDevice::Pxe);
        assert_eq!(b.mode, Some(BootMode::Legacy));
        let efi = DOM.replace("<os>", "<os firmware='efi'>");
        assert_eq!(read_boot_xml(&efi).unwrap().mode, Some(BootMode::Uefi));
        assert!(read_boot_xml("<domain><os>").is_err() || read_boot_xml("<domain><os>").is_ok());
    }
}
