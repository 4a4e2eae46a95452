//! The typed script model and its renderer.

use std::fmt;

use crate::token::{CommandName, Comment, Label, RawLine, Text, Word};

/// The magic first line that makes iPXE treat a file as a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Magic {
    /// `#!ipxe`.
    #[default]
    Ipxe,
    /// `#!gpxe`, the legacy spelling iPXE still accepts.
    Gpxe,
    /// No magic line (a fragment, or a template); iPXE would not run it as a script.
    ///
    /// A script without magic whose first line is the comment `!ipxe` renders as a script with
    /// magic; that is the one case where a model does not parse back to itself.
    Missing,
}

/// A whole iPXE script: the magic line and the lines after it.
///
/// Build one line by line, or get one from [`parse`](crate::parse) or the ready-made
/// [`ChainScript`](crate::ChainScript) and [`HostScript`](crate::HostScript). Every field is made of checked types, so
/// rendering cannot fail: unsafe values were already rejected when they were constructed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Script {
    /// The magic first line.
    pub magic: Magic,
    /// The lines after the magic line.
    pub lines: Vec<Line>,
}

impl Script {
    /// An empty `#!ipxe` script.
    pub fn new() -> Self {
        Script::default()
    }

    /// Appends a line (anything that converts into a [`Line`]: a [`Command`], a [`Statement`],
    /// a [`Label`]).
    pub fn push(&mut self, line: impl Into<Line>) -> &mut Self {
        self.lines.push(line.into());
        self
    }

    /// The script's text, one `\n` after every line.
    pub fn render(&self) -> String {
        self.to_string()
    }

    /// Labels that a literal `goto` names but no `:label` line defines.
    ///
    /// Targets that hold a settings expansion are skipped: they are only known at run time.
    pub fn undefined_labels(&self) -> Vec<Word> {
        let defined: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Label(label) => Some(label.as_str()),
                _ => None,
            })
            .collect();
        let mut missing = Vec::new();
        for line in &self.lines {
            let Line::Statement(st) = line else { continue };
            for cmd in st.commands() {
                if let Command::Goto { label } = cmd
                    && !label.as_str().contains("${")
                    && !defined.contains(&label.as_str())
                    && !missing.contains(label)
                {
                    missing.push(label.clone());
                }
            }
        }
        missing
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.magic {
            Magic::Ipxe => f.write_str("#!ipxe\n")?,
            Magic::Gpxe => f.write_str("#!gpxe\n")?,
            Magic::Missing => {}
        }
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// One line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// An empty line.
    Blank,
    /// `# text`: the comment's text after the `#`.
    Comment(Comment),
    /// `:name`, a target for `goto`.
    Label(Label),
    /// One or more commands joined by `||`, `&&` or `;`.
    Statement(Statement),
    /// A line kept verbatim because the parser could not model it. (A raw line that is in fact
    /// a valid command parses back as a [`Line::Statement`].)
    Raw(RawLine),
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Blank => Ok(()),
            Line::Comment(c) => write!(f, "#{}", c.as_str()),
            Line::Label(l) => write!(f, ":{l}"),
            Line::Statement(s) => write!(f, "{s}"),
            Line::Raw(r) => f.write_str(r.as_str()),
        }
    }
}

impl From<Statement> for Line {
    fn from(s: Statement) -> Line {
        Line::Statement(s)
    }
}

impl From<Command> for Line {
    fn from(c: Command) -> Line {
        Line::Statement(Statement::new(c))
    }
}

impl From<Label> for Line {
    fn from(l: Label) -> Line {
        Line::Label(l)
    }
}

impl From<Comment> for Line {
    fn from(c: Comment) -> Line {
        Line::Comment(c)
    }
}

/// How a command is joined to the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `&&`: run only if the previous command succeeded.
    And,
    /// `||`: run only if the previous command failed.
    Or,
    /// `;`: run regardless.
    Then,
}

impl Op {
    /// The separator token.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::And => "&&",
            Op::Or => "||",
            Op::Then => ";",
        }
    }
}

/// Commands on one line: `first [op command]... [||] [# comment]`.
///
/// ```
/// use ipxe_script::{Command, Label, Statement};
/// let st = Statement::new(Command::Dhcp(Default::default())).or_goto(Label::new("retry").unwrap());
/// assert_eq!(st.to_string(), "dhcp || goto retry");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The first command.
    pub first: Command,
    /// The commands after it, each with its separator.
    pub rest: Vec<(Op, Command)>,
    /// The line ends with a bare `||`, so a failure of the last command that ran is ignored
    /// (the `dhcp && goto ok ||` idiom).
    pub ignore_failure: bool,
    /// A trailing `# comment`.
    pub comment: Option<Comment>,
}

impl Statement {
    /// A statement of one command.
    pub fn new(first: Command) -> Self {
        Statement {
            first,
            rest: Vec::new(),
            ignore_failure: false,
            comment: None,
        }
    }

    /// Appends `&& command`.
    pub fn and(mut self, command: Command) -> Self {
        self.rest.push((Op::And, command));
        self
    }

    /// Appends `|| command`.
    pub fn or(mut self, command: Command) -> Self {
        self.rest.push((Op::Or, command));
        self
    }

    /// Appends `; command`.
    pub fn then(mut self, command: Command) -> Self {
        self.rest.push((Op::Then, command));
        self
    }

    /// Appends `|| goto label`.
    pub fn or_goto(self, label: Label) -> Self {
        self.or(Command::Goto {
            label: label.into(),
        })
    }

    /// Appends `&& goto label`.
    pub fn and_goto(self, label: Label) -> Self {
        self.and(Command::Goto {
            label: label.into(),
        })
    }

    /// Ends the line with a bare `||`, so its failure does not stop the script.
    pub fn or_ignore(mut self) -> Self {
        self.ignore_failure = true;
        self
    }

    /// All commands in order.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        std::iter::once(&self.first).chain(self.rest.iter().map(|(_, c)| c))
    }
}

impl From<Command> for Statement {
    fn from(c: Command) -> Statement {
        Statement::new(c)
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first)?;
        for (op, cmd) in &self.rest {
            write!(f, " {} {cmd}", op.as_str())?;
        }
        if self.ignore_failure {
            f.write_str(" ||")?;
        }
        if let Some(c) = &self.comment {
            write!(f, " #{}", c.as_str())?;
        }
        Ok(())
    }
}

/// The options and operands shared by `kernel`, `initrd`, `chain` (iPXE's `imgsingle` commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// `--name`: the image's name, which `initrd=` on a UEFI kernel command line refers to.
    pub name: Option<Word>,
    /// `--timeout` in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `--autofree`: free the image once it has run.
    pub autofree: bool,
    /// `--replace`: replace the running script instead of returning to it.
    pub replace: bool,
    /// The URI, relative to the script's own URI if not absolute.
    pub uri: Word,
    /// Arguments: the kernel command line for `kernel` and `chain`.
    pub args: Vec<Word>,
}

impl Image {
    /// An image with no options or arguments.
    pub fn new(uri: Word) -> Self {
        Image {
            name: None,
            timeout_ms: None,
            autofree: false,
            replace: false,
            uri,
            args: Vec::new(),
        }
    }

    /// Sets `--name`.
    pub fn named(mut self, name: Word) -> Self {
        self.name = Some(name);
        self
    }

    /// Appends arguments.
    pub fn with_args(mut self, args: impl IntoIterator<Item = Word>) -> Self {
        self.args.extend(args);
        self
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.name {
            write!(f, " --name {name}")?;
        }
        if let Some(t) = self.timeout_ms {
            write!(f, " --timeout {t}")?;
        }
        if self.autofree {
            f.write_str(" --autofree")?;
        }
        if self.replace {
            f.write_str(" --replace")?;
        }
        write!(f, " {}", self.uri)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// The options of `dhcp` and `ifconf`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NetConfig {
    /// `--configurator dhcp|ipv6` (`ifconf` only).
    pub configurator: Option<Word>,
    /// `--timeout` in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The interfaces (`net0`, ...); all of them if empty.
    pub interfaces: Vec<Word>,
}

impl fmt::Display for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.configurator {
            write!(f, " --configurator {c}")?;
        }
        if let Some(t) = self.timeout_ms {
            write!(f, " --timeout {t}")?;
        }
        for i in &self.interfaces {
            write!(f, " {i}")?;
        }
        Ok(())
    }
}

/// One iPXE command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `set name [value...]`; the name may carry a type, as in `set netid:int32 -1`.
    Set {
        /// The setting, such as `netid:int32` or `net0/ip`.
        name: Word,
        /// The value's words, joined by single spaces; empty clears the setting.
        value: Vec<Word>,
    },
    /// `clear name`.
    Clear {
        /// The setting.
        name: Word,
    },
    /// `inc name [by]`: add to an integer setting.
    Inc {
        /// The setting.
        name: Word,
        /// The increment (1 if absent).
        by: Option<Word>,
    },
    /// `kernel` (`imgselect`): download an image, select it, set its command line.
    Kernel(Image),
    /// `initrd` (`imgfetch`): download an image.
    Initrd(Image),
    /// `chain` (`imgexec`): download and run an image, usually another script.
    Chain(Image),
    /// `boot [image]`: run the selected (or named) image.
    Boot {
        /// The image's name, or the selected image if absent.
        image: Option<Word>,
    },
    /// `imgargs image args...`: replace an image's command line.
    Imgargs {
        /// The image's name.
        image: Word,
        /// The new command line.
        args: Vec<Word>,
    },
    /// `imgfree [image]`: free one image, or all of them.
    Imgfree {
        /// The image's name, or every image if absent.
        image: Option<Word>,
    },
    /// `goto label`.
    Goto {
        /// The label, without `:`; it may come from a setting.
        label: Word,
    },
    /// `isset value`: succeeds if the (expanded) value is not empty.
    Isset {
        /// The value, typically a setting expansion.
        value: Word,
    },
    /// `iseq a b`: succeeds if the two values are equal.
    Iseq {
        /// The left value.
        left: Word,
        /// The right value.
        right: Word,
    },
    /// `echo [-n] text`.
    Echo {
        /// `-n`: no newline after the text.
        no_newline: bool,
        /// The text.
        text: Text,
    },
    /// `sleep seconds`.
    Sleep {
        /// Seconds to wait.
        seconds: u32,
    },
    /// `dhcp [options] [interfaces]`.
    Dhcp(NetConfig),
    /// `ifconf [options] [interfaces]`.
    Ifconf(NetConfig),
    /// `prompt [--key k] [--timeout ms] [text]`: wait for a key press.
    Prompt {
        /// `--key`: the key to wait for.
        key: Option<Word>,
        /// `--timeout` in milliseconds.
        timeout_ms: Option<u64>,
        /// The text shown.
        text: Text,
    },
    /// `reboot [--warm]`.
    Reboot {
        /// `--warm`: a warm reboot.
        warm: bool,
    },
    /// `poweroff`.
    Poweroff,
    /// `exit [status]`: leave the script (and iPXE, back to the firmware).
    Exit {
        /// The exit status.
        status: Option<u32>,
    },
    /// Any other command, or a known command in a form this model does not cover.
    Other {
        /// The command's name.
        name: CommandName,
        /// Its arguments, verbatim.
        args: Vec<Word>,
    },
}

impl Command {
    /// `goto label`.
    pub fn goto(label: &Label) -> Command {
        Command::Goto {
            label: label.clone().into(),
        }
    }

    /// `echo text`.
    pub fn echo(text: Text) -> Command {
        Command::Echo {
            no_newline: false,
            text,
        }
    }
}

fn write_words(f: &mut fmt::Formatter<'_>, words: &[Word]) -> fmt::Result {
    for w in words {
        write!(f, " {w}")?;
    }
    Ok(())
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Set { name, value } => {
                write!(f, "set {name}")?;
                write_words(f, value)
            }
            Command::Clear { name } => write!(f, "clear {name}"),
            Command::Inc { name, by } => {
                write!(f, "inc {name}")?;
                if let Some(by) = by {
                    write!(f, " {by}")?;
                }
                Ok(())
            }
            Command::Kernel(img) => write!(f, "kernel{img}"),
            Command::Initrd(img) => write!(f, "initrd{img}"),
            Command::Chain(img) => write!(f, "chain{img}"),
            Command::Boot { image } => {
                f.write_str("boot")?;
                if let Some(i) = image {
                    write!(f, " {i}")?;
                }
                Ok(())
            }
            Command::Imgargs { image, args } => {
                write!(f, "imgargs {image}")?;
                write_words(f, args)
            }
            Command::Imgfree { image } => {
                f.write_str("imgfree")?;
                if let Some(i) = image {
                    write!(f, " {i}")?;
                }
                Ok(())
            }
            Command::Goto { label } => write!(f, "goto {label}"),
            Command::Isset { value } => write!(f, "isset {value}"),
            Command::Iseq { left, right } => write!(f, "iseq {left} {right}"),
            Command::Echo { no_newline, text } => {
                f.write_str("echo")?;
                if *no_newline {
                    f.write_str(" -n")?;
                }
                write_words(f, text.words())
            }
            Command::Sleep { seconds } => write!(f, "sleep {seconds}"),
            Command::Dhcp(n) => write!(f, "dhcp{n}"),
            Command::Ifconf(n) => write!(f, "ifconf{n}"),
            Command::Prompt {
                key,
                timeout_ms,
                text,
            } => {
                f.write_str("prompt")?;
                if let Some(k) = key {
                    write!(f, " --key {k}")?;
                }
                if let Some(t) = timeout_ms {
                    write!(f, " --timeout {t}")?;
                }
                write_words(f, text.words())
            }
            Command::Reboot { warm } => f.write_str(if *warm { "reboot --warm" } else { "reboot" }),
            Command::Poweroff => f.write_str("poweroff"),
            Command::Exit { status } => {
                f.write_str("exit")?;
                if let Some(s) = status {
                    write!(f, " {s}")?;
                }
                Ok(())
            }
            Command::Other { name, args } => {
                write!(f, "{name}")?;
                write_words(f, args)
            }
        }
    }
}
