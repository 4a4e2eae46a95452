//! Ready-made scripts: the generic entry point and the per-host boot scripts.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::kargs::KernelArgs;
use crate::query::KEYS;
use crate::script::{Command, Image, Line, Script, Statement};
use crate::token::{Comment, Label, Setting, SettingType, Text, Word};

/// What a script does once its last attempt has failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum GiveUp {
    /// `exit 1`: leave iPXE, so the firmware tries its next boot device.
    #[default]
    Exit,
    /// `reboot`: start over from the firmware.
    Reboot,
    /// `poweroff`: stop the machine, to be looked at.
    ///
    /// Debian's iPXE and upstream's default build lack the `poweroff` command (it needs
    /// `POWEROFF_CMD` in `config/general.h`), and a failed command aborts the script. So the
    /// script runs `poweroff ||` and, when it is still running, says so and falls back to
    /// [`GiveUp::Exit`]'s `exit 1` (the firmware tries its next boot device).
    Poweroff,
}

/// A bounded retry policy: `attempts` tries, `delay_secs` apart, then [`GiveUp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Retry {
    /// How many times to try in all (at least 1).
    pub attempts: u32,
    /// Seconds to wait after a failed attempt.
    pub delay_secs: u32,
    /// What to do after the last failed attempt.
    pub give_up: GiveUp,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            delay_secs: 5,
            give_up: GiveUp::Exit,
        }
    }
}

/// Prefix of every console message, so an operator can tell our messages from iPXE's.
const TAG: &str = "rhcos-metal:";
/// The attempt counter; a chained script resets it with its own `set`.
const COUNTER: &str = "attempt";

fn label(name: &str) -> Label {
    Label::lit(name)
}

fn comment(text: &str) -> Line {
    Line::Comment(Comment::lit(text))
}

fn echo(text: &str) -> Command {
    Command::echo(Text::lit(text))
}

impl Retry {
    fn check(&self) -> Result<(), Error> {
        if self.attempts == 0 {
            Err(Error::NoAttempts)
        } else {
            Ok(())
        }
    }

    /// `set attempt:int32 0`, then `:retry`, the bound check and `inc`.
    fn head(&self, script: &mut Script) {
        script.push(Command::Set {
            name: Word::lit(&format!("{COUNTER}:int32")),
            value: vec![Word::lit("0")],
        });
        script.push(label("retry"));
        script.push(
            Statement::new(Command::Iseq {
                left: expansion(COUNTER),
                right: Word::lit(&self.attempts.to_string()),
            })
            .and_goto(label("give_up"))
            .or_ignore(),
        );
        script.push(Command::Inc {
            name: Word::lit(COUNTER),
            by: None,
        });
    }

    /// `:failed` (message, sleep, `goto retry`) and `:give_up` (message, policy).
    fn tail(&self, script: &mut Script, what: &str) {
        let n = self.attempts;
        script.push(Line::Blank);
        script.push(label("failed"));
        script.push(echo(&format!(
            "{TAG} {what} failed (attempt ${{{COUNTER}}} of {n}), retrying in {} s",
            self.delay_secs
        )));
        if self.delay_secs > 0 {
            script.push(Command::Sleep {
                seconds: self.delay_secs,
            });
        }
        script.push(Command::goto(&label("retry")));
        script.push(Line::Blank);
        script.push(label("give_up"));
        let (action, command) = match self.give_up {
            GiveUp::Exit => (
                "exiting to the next boot device",
                Command::Exit { status: Some(1) },
            ),
            GiveUp::Reboot => ("rebooting", Command::Reboot { warm: false }),
            GiveUp::Poweroff => ("powering off", Command::Poweroff),
        };
        script.push(echo(&format!(
            "{TAG} {what} failed {n} times, giving up: {action}"
        )));
        if self.give_up == GiveUp::Poweroff {
            // `poweroff` is missing from most iPXE builds: fall back to exiting.
            script.push(Statement::new(command).or_ignore());
            script.push(echo(&format!(
                "{TAG} this iPXE cannot power off, exiting to the next boot device"
            )));
            script.push(Command::Exit { status: Some(1) });
        } else {
            script.push(command);
        }
    }
}

/// `${name}` for a setting name known to be valid.
fn expansion(name: &str) -> Word {
    Word::lit(&format!("${{{name}}}"))
}

/// The generic `boot.ipxe`: every host gets the same script, which chains to a per-host URL
/// carrying `${mac:hexhyp}`, `${uuid}`, `${buildarch}` and `${platform}`, so the server can
/// pick that host's script.
///
/// A failed fetch (connection error, any HTTP error status) is retried under [`Retry`]; a
/// server that is not ready yet should answer 503. If the host script returns instead of
/// booting (for example a script that is only `#!ipxe` and `exit`), `boot.ipxe` runs `exit 0`,
/// so the firmware goes on to its next boot device, such as the local disk.
///
/// ```
/// use ipxe_script::ChainScript;
/// let chain = ChainScript::per_host("http://10.0.0.1:8080/ipxe")?;
/// assert_eq!(
///     chain.url.as_str(),
///     "http://10.0.0.1:8080/ipxe?mac=${mac:hexhyp}&uuid=${uuid}&arch=${buildarch}&platform=${platform}"
/// );
/// let text = chain.script()?.render();
/// assert!(text.starts_with("#!ipxe\n"));
/// # Ok::<(), ipxe_script::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainScript {
    /// The URL to chain to.
    pub url: Word,
    /// How often to try.
    pub retry: Retry,
}

impl ChainScript {
    /// Chains to `base_url` with the host's identity appended as query parameters `mac`
    /// (hyphenated hex), `uuid`, `arch` (`${buildarch}`) and `platform` (`pcbios` or `efi`).
    /// The server reads them back with [`HostQuery`](crate::HostQuery).
    pub fn per_host(base_url: &str) -> Result<Self, Error> {
        let sep = if base_url.contains('?') { '&' } else { '?' };
        let values = [
            Setting::mac().typed(SettingType::Hexhyp),
            Setting::uuid(),
            Setting::buildarch(),
            Setting::platform(),
        ];
        let query: Vec<String> = KEYS
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let url = Word::new(format!("{base_url}{sep}{}", query.join("&")))?;
        Ok(ChainScript {
            url,
            retry: Retry::default(),
        })
    }

    /// The script.
    pub fn script(&self) -> Result<Script, Error> {
        self.retry.check()?;
        let mut s = Script::new();
        s.push(comment(
            " rhcos-metal boot.ipxe: fetch this host's own script, with bounded retries",
        ));
        self.retry.head(&mut s);
        // After a failure the link may have gone: configure it again if it has no address.
        s.push(
            Statement::new(Command::Isset {
                value: Setting::ip().into(),
            })
            .or(Command::Dhcp(Default::default()))
            .or_goto(label("failed")),
        );
        s.push(echo(&format!(
            "{TAG} ${{mac:hexhyp}} ${{buildarch}}/${{platform}} fetching its script (attempt ${{{COUNTER}}} of {})",
            self.retry.attempts
        )));
        s.push(
            Statement::new(Command::Chain(Image::new(self.url.clone()))).or_goto(label("failed")),
        );
        // The host script returned instead of booting: that is how a server says "boot from
        // the next device" (it answers `#!ipxe` and `exit`), so leave iPXE successfully.
        s.push(echo(&format!(
            "{TAG} the host script returned, exiting to the next boot device"
        )));
        s.push(Command::Exit { status: Some(0) });
        self.retry.tail(&mut s, "fetching the host script");
        Ok(s)
    }
}

/// A per-host boot script: kernel and initramfs over HTTP, the kernel command line, retries.
///
/// The kernel line carries `initrd=main` and the initramfs is fetched with
/// `initrd --name main`, which UEFI needs (the EFI stub finds the initrd by name) and BIOS
/// ignores. Use it for every generation: legacy install, live install, introspection, live
/// boot; the [`KernelArgs`] decide which.
///
/// ```
/// use ipxe_script::{HostScript, CoreosArgs, Word};
/// let args = CoreosArgs::live_install(
///     "http://10.0.0.1/rootfs.img", "/dev/sda", "http://10.0.0.1/worker.ign",
/// )
/// .build()?;
/// let boot = HostScript::new(
///     Word::new("http://10.0.0.1/kernel")?,
///     Word::new("http://10.0.0.1/initramfs.img")?,
///     args,
/// );
/// let text = boot.script()?.render();
/// assert!(text.contains("kernel http://10.0.0.1/kernel initrd=main coreos.live.rootfs_url="));
/// assert!(text.contains("initrd --name main http://10.0.0.1/initramfs.img || goto failed"));
/// # Ok::<(), ipxe_script::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostScript {
    /// The kernel's URL.
    pub kernel: Word,
    /// The initramfs's URL.
    pub initrd: Word,
    /// The kernel command line (without `initrd=`, which the script adds).
    pub args: KernelArgs,
    /// How often to try.
    pub retry: Retry,
}

impl HostScript {
    /// A boot script with the default retry policy.
    pub fn new(kernel: Word, initrd: Word, args: KernelArgs) -> Self {
        HostScript {
            kernel,
            initrd,
            args,
            retry: Retry::default(),
        }
    }

    /// The script.
    pub fn script(&self) -> Result<Script, Error> {
        self.retry.check()?;
        let mut s = Script::new();
        let title = match self.args.purpose() {
            Some(p) => format!(" rhcos-metal: {p}"),
            None => " rhcos-metal: boot".to_owned(),
        };
        s.push(Line::Comment(Comment::new(title)?));
        self.retry.head(&mut s);
        s.push(echo(&format!(
            "{TAG} ${{mac:hexhyp}} loading the kernel and initramfs (attempt ${{{COUNTER}}} of {})",
            self.retry.attempts
        )));
        // Drop whatever a failed attempt left loaded.
        s.push(Command::Imgfree { image: None });
        let main = Word::lit("main");
        let mut args = vec![Word::lit("initrd=main")];
        args.extend(self.args.to_words());
        s.push(
            Statement::new(Command::Kernel(
                Image::new(self.kernel.clone()).with_args(args),
            ))
            .or_goto(label("failed")),
        );
        s.push(
            Statement::new(Command::Initrd(Image::new(self.initrd.clone()).named(main)))
                .or_goto(label("failed")),
        );
        s.push(echo(&format!("{TAG} booting the kernel")));
        s.push(Statement::new(Command::Boot { image: None }).or_goto(label("failed")));
        self.retry.tail(&mut s, "booting");
        Ok(s)
    }
}
