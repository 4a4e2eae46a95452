//! GRUB configurations for the Secure Boot path: shim → signed GRUB → signed kernel.
//!
//! A UEFI host with Secure Boot on cannot run iPXE (it is not signed), so it boots the
//! Microsoft-signed shim, which loads a signed GRUB, which fetches a per-host configuration
//! and loads the (signed) kernel with the same `coreos.inst.*` arguments the iPXE path gives.
//! [`Config`] is that configuration: no menu, the kernel and initramfs over HTTP (or TFTP),
//! a bounded retry loop and a [`GiveUp`] policy like the iPXE scripts.
//!
//! Every value is written inside single quotes, where GRUB takes every character literally
//! (no `$` expansion, no `;`, `|`, `&`, `<`, `>`, `{`, `}` or `#` meaning). What single quotes
//! cannot hold is refused with an [`Error::Unsafe`] when the value is made: a single quote
//! (it would end the quoting), line breaks and other control characters, and `\` and `"`,
//! which GRUB's `linux` command escapes again when it builds the kernel command line.
//!
//! ```
//! use ipxe_script::grub::{Config, NetFile};
//! use ipxe_script::{CoreosArgs, Retry};
//!
//! let args = CoreosArgs::live_install(
//!     "http://172.22.0.1:8080/rootfs.img",
//!     "/dev/sda",
//!     "http://172.22.0.1:8080/ignition?mac=52-54-00-12-34-56&role=worker",
//! )
//! .build()?;
//! let config = Config::new(
//!     NetFile::from_url("http://172.22.0.1:8080/installer-kernel")?,
//!     vec![NetFile::from_url("http://172.22.0.1:8080/installer-initramfs.img")?],
//!     args,
//! );
//! let text = config.render();
//! assert!(text.contains("linux '(http,172.22.0.1:8080)/installer-kernel' 'coreos.live.rootfs_url="));
//! // The `&` in the Ignition URL is quoted, so GRUB does not read it as an operator.
//! assert!(text.contains("'coreos.inst.ignition_url=http://172.22.0.1:8080/ignition?mac=52-54-00-12-34-56&role=worker'"));
//! // The text parses back to the same model.
//! assert_eq!(ipxe_script::grub::parse(&text)?, config);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use crate::error::{Error, Problem};
use crate::kargs::KernelArgs;
use crate::ready::{GiveUp, Retry};

/// Prefix of our console messages, as in the iPXE scripts.
const TAG: &str = "rhcos-metal:";
/// The first line of every configuration we write.
const HEADER: &str = "# rhcos-metal: per-host GRUB configuration";

/// Checks that `value` can be written between single quotes and reaches its command unchanged.
fn check_word(what: &'static str, value: &str) -> Result<(), Error> {
    let bad = |problem| Error::Unsafe {
        what,
        value: value.to_owned(),
        problem,
    };
    if value.is_empty() {
        return Err(bad(Problem::Empty));
    }
    for (at, c) in value.char_indices() {
        let problem = match c {
            '\n' | '\r' => Problem::LineBreak { at },
            '\'' => Problem::SingleQuote { at },
            '"' => Problem::Quote { at },
            '\\' => Problem::Backslash { at },
            '$' => Problem::Expansion { at },
            c if c.is_control() => Problem::Control { at },
            _ => continue,
        };
        return Err(bad(problem));
    }
    Ok(())
}

/// How GRUB reaches a file on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetProtocol {
    /// `(http,server)`: GRUB's HTTP client.
    Http,
    /// `(tftp,server)`: GRUB's TFTP client.
    Tftp,
}

impl NetProtocol {
    /// GRUB's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            NetProtocol::Http => "http",
            NetProtocol::Tftp => "tftp",
        }
    }
}

/// A file GRUB loads from the network: `(http,server)/path`.
///
/// The server is `address` or `address:port`; the path starts with `/` and may carry a
/// query, which GRUB's HTTP client sends as it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NetFile {
    protocol: NetProtocol,
    server: String,
    path: String,
}

impl NetFile {
    /// `(protocol,server)path`, checked.
    ///
    /// # Errors
    /// [`Error::Unsafe`] when the server is empty or holds `,`, `(`, `)`, `/` or whitespace,
    /// when the path does not start with `/`, or when either could not be quoted.
    pub fn new(protocol: NetProtocol, server: &str, path: &str) -> Result<Self, Error> {
        check_word("GRUB server", server)?;
        if let Some(at) = server.find([',', '(', ')', '/', ' ', '\t']) {
            return Err(Error::Unsafe {
                what: "GRUB server",
                value: server.to_owned(),
                problem: Problem::Character { at },
            });
        }
        check_word("GRUB path", path)?;
        if !path.starts_with('/') {
            return Err(Error::Unsafe {
                what: "GRUB path",
                value: path.to_owned(),
                problem: Problem::Character { at: 0 },
            });
        }
        if let Some(at) = path.find([' ', '\t']) {
            return Err(Error::Unsafe {
                what: "GRUB path",
                value: path.to_owned(),
                problem: Problem::Whitespace { at },
            });
        }
        Ok(NetFile {
            protocol,
            server: server.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The GRUB form of an `http://server/path` or `tftp://server/path` URL. The protocol's
    /// default port (`:80`, `:69`) is left out: GRUB 2.06 (Debian 12) takes no port in a
    /// device name and always uses the default one.
    ///
    /// # Errors
    /// [`Error::Unsafe`] for another scheme, a URL without a path, or what [`NetFile::new`]
    /// refuses.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let (protocol, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (NetProtocol::Http, rest)
        } else if let Some(rest) = url.strip_prefix("tftp://") {
            (NetProtocol::Tftp, rest)
        } else {
            return Err(Error::Unsafe {
                what: "GRUB URL",
                value: url.to_owned(),
                problem: Problem::Character { at: 0 },
            });
        };
        let Some(slash) = rest.find('/') else {
            return Err(Error::Unsafe {
                what: "GRUB URL",
                value: url.to_owned(),
                problem: Problem::Empty,
            });
        };
        let server = &rest[..slash];
        let default_port = match protocol {
            NetProtocol::Http => ":80",
            NetProtocol::Tftp => ":69",
        };
        let server = server.strip_suffix(default_port).unwrap_or(server);
        NetFile::new(protocol, server, &rest[slash..])
    }

    /// The protocol.
    pub fn protocol(&self) -> NetProtocol {
        self.protocol
    }

    /// The server, `address` or `address:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The path on the server, from its `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn parse(word: &str) -> Option<Self> {
        let rest = word.strip_prefix('(')?;
        let (device, path) = rest.split_once(')')?;
        let (protocol, server) = device.split_once(',')?;
        let protocol = match protocol {
            "http" => NetProtocol::Http,
            "tftp" => NetProtocol::Tftp,
            _ => return None,
        };
        NetFile::new(protocol, server, path).ok()
    }
}

impl fmt::Display for NetFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({},{}){}",
            self.protocol.as_str(),
            self.server,
            self.path
        )
    }
}

/// A per-host GRUB configuration: load the kernel with its arguments and the initramfs, boot;
/// on failure retry under [`Retry`], then [`GiveUp`].
///
/// Rendering cannot fail: every part was checked when it was made. Two configurations are
/// equal when they would render the same text (the arguments' [`KernelArgs::purpose`] is not
/// part of the text, so it is not compared).
#[derive(Clone, Debug, Eq)]
pub struct Config {
    /// The kernel (a signed one, for Secure Boot).
    pub kernel: NetFile,
    /// The initramfs images, in order (at least one for an installer).
    pub initrds: Vec<NetFile>,
    /// The kernel command line.
    pub args: KernelArgs,
    /// Attempts, delay and what to do after the last one.
    pub retry: Retry,
}

impl Config {
    /// A configuration with the default [`Retry`].
    pub fn new(kernel: NetFile, initrds: Vec<NetFile>, args: KernelArgs) -> Self {
        Config {
            kernel,
            initrds,
            args,
            retry: Retry::default(),
        }
    }

    /// The same configuration with another retry policy.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The configuration's text.
    ///
    /// The attempt count is at least 1: a policy of 0 attempts renders as 1.
    pub fn render(&self) -> String {
        self.to_string()
    }

    fn give_up(&self) -> (&'static str, &'static str) {
        match self.retry.give_up {
            GiveUp::Exit => ("exiting to the next boot device", "exit 1"),
            GiveUp::Reboot => ("rebooting", "reboot"),
            GiveUp::Poweroff => ("powering off", "halt"),
        }
    }
}

impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel
            && self.initrds == other.initrds
            && self.args.iter().eq(other.args.iter())
            && self.retry.attempts.max(1) == other.retry.attempts.max(1)
            && self.retry.delay_secs == other.retry.delay_secs
            && self.retry.give_up == other.retry.give_up
    }
}

fn quoted(value: &impl fmt::Display) -> String {
    format!("'{value}'")
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.retry.attempts.max(1);
        let delay = self.retry.delay_secs;
        writeln!(f, "{HEADER}")?;
        writeln!(f, "set timeout=0")?;
        let list: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        writeln!(f, "for attempt in {}; do", list.join(" "))?;
        writeln!(
            f,
            "  echo '{TAG} loading the installer, attempt' \"$attempt\" 'of {n}'"
        )?;
        write!(f, "  if linux {}", quoted(&self.kernel))?;
        for arg in self.args.iter() {
            write!(f, " {}", quoted(arg))?;
        }
        writeln!(f, "; then")?;
        let mut indent = String::from("    ");
        for initrd in &self.initrds {
            writeln!(f, "{indent}if initrd {}; then", quoted(initrd))?;
            indent.push_str("  ");
        }
        writeln!(f, "{indent}boot")?;
        for _ in &self.initrds {
            indent.truncate(indent.len() - 2);
            writeln!(f, "{indent}fi")?;
        }
        writeln!(f, "  fi")?;
        writeln!(
            f,
            "  echo '{TAG} loading the installer failed, retrying in {delay} s'"
        )?;
        writeln!(f, "  sleep {delay}")?;
        writeln!(f, "done")?;
        let (action, command) = self.give_up();
        writeln!(
            f,
            "echo '{TAG} loading the installer failed {n} times, giving up: {action}'"
        )?;
        writeln!(f, "{command}")
    }
}

/// Why [`parse`] did not read a text as a [`Config`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line GRUB would not read as one or more whole words: an unclosed quote or a
    /// trailing backslash.
    #[error("line {line}: {problem}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The text is valid GRUB script but not a configuration this crate writes.
    #[error("line {line}: expected {expected}")]
    Shape {
        /// 1-based line number (0 at the end of the text).
        line: usize,
        /// What the parser expected there.
        expected: &'static str,
    },
    /// A kernel argument, file or policy that the model refuses.
    #[error("line {line}: {source}")]
    Value {
        /// 1-based line number.
        line: usize,
        /// The model's error.
        source: Error,
    },
}

/// Splits one line into GRUB words the way GRUB's lexer does for plain commands: blanks
/// separate words, `'...'` is literal, `"..."` is literal except for `\"`, `\\`, `\$` and
/// `\` before a line break, `\x` outside quotes is `x`, and a word starting with `#` starts a
/// comment. `$name` is kept as written (it is expanded at run time). `None` for an unclosed
/// quote or a trailing backslash.
pub fn words(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(&first) = chars.peek() else { break };
        if first == '#' {
            break;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            match c {
                ' ' | '\t' => break,
                '\'' => {
                    chars.next();
                    loop {
                        match chars.next()? {
                            '\'' => break,
                            c => word.push(c),
                        }
                    }
                }
                '"' => {
                    chars.next();
                    loop {
                        match chars.next()? {
                            '"' => break,
                            '\\' => match chars.next()? {
                                c @ ('"' | '\\' | '$') => word.push(c),
                                c => {
                                    word.push('\\');
                                    word.push(c);
                                }
                            },
                            c => word.push(c),
                        }
                    }
                }
                '\\' => {
                    chars.next();
                    word.push(chars.next()?);
                }
                ';' => {
                    if word.is_empty() {
                        chars.next();
                        word.push(';');
                    }
                    break;
                }
                '|' | '&' | '<' | '>' | '{' | '}' => return None,
                c => {
                    chars.next();
                    word.push(c);
                }
            }
        }
        out.push(word);
    }
    Some(out)
}

/// A cursor over the text's lines, blank lines and comments skipped.
struct Lines<'a> {
    lines: std::iter::Peekable<std::iter::Enumerate<std::str::Lines<'a>>>,
}

impl Lines<'_> {
    /// The next line's words and its number, or `Shape` at the end of the text.
    fn next(&mut self, expected: &'static str) -> Result<(usize, Vec<String>), ParseError> {
        for (i, line) in self.lines.by_ref() {
            let n = i + 1;
            let words = words(line).ok_or(ParseError::Syntax {
                line: n,
                problem: "unclosed quote or trailing backslash",
            })?;
            if !words.is_empty() {
                return Ok((n, words));
            }
        }
        Err(ParseError::Shape { line: 0, expected })
    }

    fn expect(&mut self, want: &[&str], expected: &'static str) -> Result<usize, ParseError> {
        let (n, words) = self.next(expected)?;
        if words != want {
            return Err(ParseError::Shape { line: n, expected });
        }
        Ok(n)
    }
}

fn file(line: usize, word: &str) -> Result<NetFile, ParseError> {
    NetFile::parse(word).ok_or(ParseError::Shape {
        line,
        expected: "a file such as (http,server)/path",
    })
}

fn number(line: usize, word: &str, expected: &'static str) -> Result<u32, ParseError> {
    // Plain decimal only, so the model renders back to the same text.
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) || word.starts_with('0') {
        return Err(ParseError::Shape { line, expected });
    }
    word.parse()
        .map_err(|_| ParseError::Shape { line, expected })
}

/// Reads a configuration that [`Config::render`] wrote (comments, blank lines, indentation and
/// quoting may differ) back into the model.
///
/// # Errors
/// [`ParseError`] for text that is not such a configuration.
pub fn parse(text: &str) -> Result<Config, ParseError> {
    let mut lines = Lines {
        lines: text.lines().enumerate().peekable(),
    };
    lines.expect(&["set", "timeout=0"], "set timeout=0")?;

    let (n, head) = lines.next("for attempt in 1 .. N; do")?;
    let shape = ParseError::Shape {
        line: n,
        expected: "for attempt in 1 .. N; do",
    };
    let numbers = match head.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["for", "attempt", "in", ref numbers @ .., ";", "do"] if !numbers.is_empty() => {
            numbers.to_vec()
        }
        _ => return Err(shape),
    };
    let expected_list: Vec<String> = (1..=numbers.len()).map(|i| i.to_string()).collect();
    if numbers != expected_list.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(shape);
    }
    let attempts = u32::try_from(numbers.len()).map_err(|_| shape.clone())?;
    let attempts_text = attempts.to_string();

    let (n, echo) = lines.next("the attempt message")?;
    let want = [
        "echo",
        &format!("{TAG} loading the installer, attempt"),
        "$attempt",
        &format!("of {attempts_text}"),
    ];
    if echo != want {
        return Err(ParseError::Shape {
            line: n,
            expected: "the attempt message",
        });
    }

    let (n, linux) = lines.next("if linux KERNEL ARGS; then")?;
    let shape = ParseError::Shape {
        line: n,
        expected: "if linux KERNEL ARGS; then",
    };
    let rest = match linux.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["if", "linux", ref rest @ .., ";", "then"] if !rest.is_empty() => rest.to_vec(),
        _ => return Err(shape),
    };
    let kernel = file(n, rest[0])?;
    for arg in &rest[1..] {
        check_word("kernel argument", arg)
            .map_err(|source| ParseError::Value { line: n, source })?;
    }
    let args = KernelArgs::parse(&rest[1..].join(" "))
        .map_err(|source| ParseError::Value { line: n, source })?;
    if args.len() != rest.len() - 1 {
        return Err(shape);
    }

    let mut initrds = Vec::new();
    loop {
        let (n, words) = lines.next("if initrd FILE; then, or boot")?;
        match words.as_slice() {
            [boot] if boot == "boot" => break,
            [i, initrd, f, semi, then]
                if i == "if" && initrd == "initrd" && semi == ";" && then == "then" =>
            {
                initrds.push(file(n, f)?);
            }
            _ => {
                return Err(ParseError::Shape {
                    line: n,
                    expected: "if initrd FILE; then, or boot",
                });
            }
        }
    }
    for _ in 0..=initrds.len() {
        lines.expect(&["fi"], "fi")?;
    }

    let (n, echo) = lines.next("the retry message")?;
    let bad = ParseError::Shape {
        line: n,
        expected: "the retry message",
    };
    let [e, message] = echo.as_slice() else {
        return Err(bad);
    };
    let delay_text = message
        .strip_prefix(&format!("{TAG} loading the installer failed, retrying in "))
        .and_then(|m| m.strip_suffix(" s"))
        .filter(|_| e == "echo")
        .ok_or(bad)?;
    let delay_secs = if delay_text == "0" {
        0
    } else {
        number(n, delay_text, "the retry message")?
    };
    lines.expect(&["sleep", &delay_secs.to_string()], "sleep DELAY")?;
    lines.expect(&["done"], "done")?;

    let (n, echo) = lines.next("the give-up message")?;
    let (n2, command) = lines.next("the give-up command")?;
    let give_up = match command.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["exit", "1"] => GiveUp::Exit,
        ["reboot"] => GiveUp::Reboot,
        ["halt"] => GiveUp::Poweroff,
        _ => {
            return Err(ParseError::Shape {
                line: n2,
                expected: "exit 1, reboot or halt",
            });
        }
    };
    let config = Config {
        kernel,
        initrds,
        args,
        retry: Retry {
            attempts,
            delay_secs,
            give_up,
        },
    };
    let (action, _) = config.give_up();
    let want =
        format!("{TAG} loading the installer failed {attempts_text} times, giving up: {action}");
    if echo != ["echo", want.as_str()] {
        return Err(ParseError::Shape {
            line: n,
            expected: "the give-up message",
        });
    }
    if let Ok((n, _)) = lines.next("the end") {
        return Err(ParseError::Shape {
            line: n,
            expected: "the end of the configuration",
        });
    }
    Ok(config)
}

/// The file names GRUB's network boot tries, in its order, for a host: `grub.cfg-01-<mac>`
/// (lower-case hex, `-` separated), `grub.cfg-<IPv4 in upper-case hex>` and its shortenings by
/// one hex digit down to one digit, then `grub.cfg`.
///
/// ```
/// let names = ipxe_script::grub::config_names([0x52, 0x54, 0, 0x12, 0x34, 0x56], Some([172, 22, 0, 10].into()));
/// assert_eq!(names[0], "grub.cfg-01-52-54-00-12-34-56");
/// assert_eq!(names[1], "grub.cfg-AC16000A");
/// assert_eq!(names[8], "grub.cfg-A");
/// assert_eq!(names.last().unwrap(), "grub.cfg");
/// ```
pub fn config_names(mac: [u8; 6], ip: Option<std::net::Ipv4Addr>) -> Vec<String> {
    let mut out = vec![format!(
        "grub.cfg-01-{}",
        mac.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join("-")
    )];
    if let Some(ip) = ip {
        let hex: String = ip.octets().iter().map(|b| format!("{b:02X}")).collect();
        for len in (1..=hex.len()).rev() {
            out.push(format!("grub.cfg-{}", &hex[..len]));
        }
    }
    out.push("grub.cfg".to_owned());
    out
}

/// What a requested configuration name says about the host: the MAC of `grub.cfg-01-<mac>`,
/// the IPv4 prefix of `grub.cfg-<hex>`, or nothing for `grub.cfg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigName {
    /// `grub.cfg-01-<mac>`.
    Mac([u8; 6]),
    /// `grub.cfg-<hex>`: the upper-case hex digits of the address, possibly shortened.
    IpPrefix(String),
    /// `grub.cfg`: the host is known only by who asks.
    Generic,
}

impl ConfigName {
    /// Reads a file name (without directories). `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        if name == "grub.cfg" {
            return Some(ConfigName::Generic);
        }
        let rest = name.strip_prefix("grub.cfg-")?;
        if let Some(mac) = rest.strip_prefix("01-")
            && mac.len() == 17
        {
            let mut out = [0u8; 6];
            for (i, part) in mac.split('-').enumerate() {
                if i >= 6 || part.len() != 2 {
                    return None;
                }
                out[i] = u8::from_str_radix(part, 16).ok()?;
            }
            return Some(ConfigName::Mac(out));
        }
        (!rest.is_empty() && rest.len() <= 8 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| ConfigName::IpPrefix(rest.to_ascii_uppercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_grub_quoting() {
        assert_eq!(
            words(r#"echo 'a b' "c \"d\" \$e" f\ g $h # comment"#).unwrap(),
            ["echo", "a b", "c \"d\" $e", "f g", "$h"]
        );
        assert_eq!(words("echo 'open"), None);
        assert_eq!(words("echo trailing\\"), None);
    }

    #[test]
    fn config_names_parse_back() {
        let names = config_names(
            [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
            Some([10, 0, 0, 7].into()),
        );
        assert_eq!(
            ConfigName::parse(&names[0]),
            Some(ConfigName::Mac([0x52, 0x54, 0, 0xab, 0xcd, 0xef]))
        );
        assert_eq!(
            ConfigName::parse(&names[1]),
            Some(ConfigName::IpPrefix("0A000007".into()))
        );
        assert_eq!(ConfigName::parse("grub.cfg"), Some(ConfigName::Generic));
        assert_eq!(ConfigName::parse("grub.cfg-01-zz"), None);
        assert_eq!(ConfigName::parse("grub.cfg-0A0000070"), None);
        assert_eq!(ConfigName::parse("x86_64-efi/grub.cfg"), None);
    }
}
