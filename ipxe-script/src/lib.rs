//! Typed iPXE scripts and CoreOS/RHCOS kernel arguments, with a tolerant parser.
//!
//! This crate writes the scripts a bare-metal RHCOS/OpenShift deployment serves to booting
//! hosts: the generic `boot.ipxe` that every host fetches first, and the per-host script that
//! loads the installer with the right kernel command line for its installer generation. It is
//! pure: no I/O, no runtime. Serving the scripts is `pxe-stack`'s job.
//!
//! # Key types
//!
//! - [`Script`], [`Line`], [`Statement`], [`Command`]: the script model. [`Script::render`]
//!   writes it. Values are checked when they are constructed ([`Word`], [`Label`], [`Text`],
//!   [`Comment`]): anything that would break the script (line breaks, whitespace inside a
//!   token, an unbalanced `${`, a leading `#` that would start a comment, a separator such as
//!   `||`, a trailing `\`) is an [`Error::Unsafe`], never escaped silently.
//! - [`Setting`]: settings expansions such as `${mac:hexhyp}` and `${net${netid}/mac}`.
//! - [`parse`]: a tolerant parser. Unknown commands become [`Command::Other`], templates and odd
//!   lines become [`Line::Raw`], and [`Warning`]s say what was odd.
//! - [`CoreosArgs`] builds a checked [`KernelArgs`] for a [`Generation`] (legacy RHCOS 4.1-4.5
//!   installer or live RHCOS 4.6+): install, introspection install or live boot. It never emits
//!   `rd.break`.
//! - Ready-made scripts: [`ChainScript`] (the generic `boot.ipxe`) and [`HostScript`] (kernel + initramfs
//!   with `initrd=main`, so UEFI works), both with a bounded [`Retry`] loop and a [`GiveUp`]
//!   policy. [`HostQuery`] reads the per-host URL's query back on the server side.
//!
//! - [`grub`]: the per-host GRUB configuration of the Secure Boot path (shim → signed GRUB →
//!   signed kernel), with the same kernel arguments, retry and give-up; [`grub::parse`] reads it
//!   back and [`grub::config_names`] lists the file names GRUB's network boot asks for.
//!
//! # Example
//!
//! ```
//! use ipxe_script::{HostScript, ChainScript, CoreosArgs, Generation, Word};
//!
//! // The script every host gets first: it chains to its own script.
//! let entry = ChainScript::per_host("http://172.22.0.1:8080/ipxe")?.script()?;
//! assert!(entry.render().contains("chain http://172.22.0.1:8080/ipxe?mac=${mac:hexhyp}&uuid=${uuid}"));
//!
//! // The per-host script, here for the legacy RHCOS 4.1-4.5 installer.
//! let args = CoreosArgs {
//!     consoles: vec!["tty0".into(), "ttyS0".into()],
//!     ..CoreosArgs::legacy_install(
//!         "/dev/sda",
//!         "http://172.22.0.1:8080/rhcos-metal.raw.gz",
//!         "http://172.22.0.1:8080/ignition?mac=${mac:hexhyp}",
//!     )
//! }
//! .build()?;
//! assert_eq!(args.get("coreos.inst.install_dev"), Some(Some("sda")));
//! let host = HostScript::new(
//!     Word::new("http://172.22.0.1:8080/installer-kernel")?,
//!     Word::new("http://172.22.0.1:8080/installer-initramfs.img")?,
//!     args,
//! )
//! .script()?;
//! let text = host.render();
//! assert!(text.contains(" coreos.inst=yes coreos.inst.install_dev=sda "));
//!
//! // Any script parses back to the same model.
//! assert_eq!(ipxe_script::parse(&text).script, host);
//! # Ok::<(), ipxe_script::Error>(())
//! ```
//!
//! # Feature flags
//!
//! None. The crate depends only on `serde` (for the policy types a deployment plan holds) and
//! `thiserror`.
//!
//! # What it does not do
//!
//! - No I/O and no HTTP: it produces text; `pxe-stack` serves it.
//! - It does not run scripts or expand settings; iPXE does that at boot.
//! - It does not choose artifacts (`rhcos-images` does) or Ignition configs (`ignition-serve`).
//! - The parser does not understand Jinja or other templates; it keeps their lines verbatim.
//! - Command aliases (`imgfetch`, `module`, `imgexec`, ...) and short options are kept as
//!   [`Command::Other`], and options are written back in a fixed order, so a parsed script
//!   renders to the same model, not always to the same bytes.

#![warn(missing_docs)]

mod error;
pub mod grub;
mod kargs;
mod parse;
mod query;
mod ready;
mod script;
mod token;

pub use crate::error::{Error, Problem};
pub use crate::kargs::{CoreosArgs, Generation, Ip, KernelArg, KernelArgs, Purpose};
pub use crate::parse::{Parsed, RawReason, Warning, WarningKind, parse};
pub use crate::query::{BuildArch, HostQuery, Platform};
pub use crate::ready::{ChainScript, GiveUp, HostScript, Retry};
pub use crate::script::{Command, Image, Line, Magic, NetConfig, Op, Script, Statement};
pub use crate::token::{CommandName, Comment, Label, RawLine, Setting, SettingType, Text, Word};
