//! The tolerant parser: any text in, a [`Script`] and warnings out.

use std::fmt;

use crate::error::Problem;
use crate::script::{Command, Image, Line, Magic, NetConfig, Op, Script, Statement};
use crate::token::{CommandName, Comment, Label, RawLine, Text, Word, is_space};

/// The result of [`parse`]: the script and what was odd about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The script. Lines that could not be modelled are kept as [`Line::Raw`].
    pub script: Script,
    /// Recoverable oddities, in line order.
    pub warnings: Vec<Warning>,
}

/// Something odd the parser met and worked around.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The 1-based line number (of the first physical line, for continued lines).
    pub line: usize,
    /// What was odd.
    pub kind: WarningKind,
}

/// The kinds of [`Warning`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// The first line is not `#!ipxe` or `#!gpxe`, so iPXE would not run this as a script.
    MissingMagic,
    /// A template line (Jinja `{{ }}`, `{% %}`, `{# #}`), kept raw.
    Template,
    /// A line whose syntax the model does not cover, kept raw.
    KeptRaw {
        /// Why it was not modelled.
        reason: RawReason,
    },
    /// The last line ends with `\`; iPXE drops such a line, the parser drops the backslash.
    DanglingContinuation,
}

/// Why a line was kept raw.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawReason {
    /// A token would not be accepted as a [`Word`].
    Token(Problem),
    /// A label line that also carries a command (newer iPXE runs it; older ones do not).
    LabelWithCommand,
    /// An invalid label name.
    BadLabel,
    /// An empty command between separators, or a separator at the start.
    EmptyCommand,
    /// The command name would not be accepted as a [`CommandName`].
    BadCommandName,
}

impl fmt::Display for RawReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawReason::Token(problem) => write!(f, "a token is unsafe: {problem}"),
            RawReason::LabelWithCommand => f.write_str("a label followed by a command"),
            RawReason::BadLabel => f.write_str("an invalid label name"),
            RawReason::EmptyCommand => f.write_str("an empty command between separators"),
            RawReason::BadCommandName => f.write_str("an invalid command name"),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            WarningKind::MissingMagic => f.write_str("no #!ipxe magic line"),
            WarningKind::Template => f.write_str("template line kept verbatim"),
            WarningKind::KeptRaw { reason } => write!(f, "kept verbatim: {reason}"),
            WarningKind::DanglingContinuation => f.write_str("trailing backslash on the last line"),
        }
    }
}

/// Parses a script, keeping whatever it cannot model as raw lines.
///
/// Never fails. Whitespace is normalised (leading and trailing blanks dropped, single spaces
/// between tokens), `\`-continued lines are joined as iPXE joins them, and command options are
/// put in a fixed order, so `parse(text).script.render()` is stable: parsing the rendered text
/// gives the same script again.
///
/// ```
/// let parsed = ipxe_script::parse("#!ipxe\ndhcp || goto retry\n{{ jinja }}\n");
/// assert_eq!(parsed.script.lines.len(), 2);
/// assert_eq!(parsed.warnings.len(), 1);
/// ```
pub fn parse(input: &str) -> Parsed {
    let mut warnings = Vec::new();
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut physical = input.split('\n').enumerate().peekable();
    let ends_with_newline = input.ends_with('\n');
    while let Some((idx, first)) = physical.next() {
        // The piece after a final newline is not a line.
        if ends_with_newline && physical.peek().is_none() && first.is_empty() {
            break;
        }
        let mut line = physical_line(first);
        while line.ends_with('\\') {
            line.pop();
            match physical.next() {
                Some((_, next)) if !(ends_with_newline && physical.peek().is_none()) => {
                    line.push_str(&physical_line(next));
                }
                _ => {
                    warnings.push(Warning {
                        line: idx + 1,
                        kind: WarningKind::DanglingContinuation,
                    });
                    let kept = line.trim_end_matches('\\').len();
                    line.truncate(kept);
                    break;
                }
            }
        }
        logical.push((idx + 1, line));
    }

    let mut script = Script {
        magic: Magic::Missing,
        lines: Vec::new(),
    };
    let mut rest = &logical[..];
    // Tolerant: a magic line with stray blanks around it is still the magic line (rendering
    // writes it at column 0, where iPXE looks for it).
    match logical.first().map(|(_, l)| l.trim_matches(is_space)) {
        Some("#!ipxe") => {
            script.magic = Magic::Ipxe;
            rest = &logical[1..];
        }
        Some("#!gpxe") => {
            script.magic = Magic::Gpxe;
            rest = &logical[1..];
        }
        _ => warnings.push(Warning {
            line: 1,
            kind: WarningKind::MissingMagic,
        }),
    }
    for (number, text) in rest {
        let line = match parse_line(text) {
            Ok(line) => line,
            Err(kind) => {
                warnings.push(Warning {
                    line: *number,
                    kind,
                });
                // Continuations were joined and carriage returns turned into spaces above, so
                // the line has no line break and no trailing `\`.
                match RawLine::new(text.trim_matches(is_space)) {
                    Ok(raw) => Line::Raw(raw),
                    Err(_) => Line::Blank,
                }
            }
        };
        script.lines.push(line);
    }
    warnings.sort_by_key(|w| w.line);
    Parsed { script, warnings }
}

/// One physical line: a trailing CR dropped (as iPXE does) and any other CR, vertical tab or
/// form feed turned into a space, which is what iPXE's tokenizer makes of them.
fn physical_line(text: &str) -> String {
    text.strip_suffix('\r')
        .unwrap_or(text)
        .replace(['\r', '\x0b', '\x0c'], " ")
}

fn is_template(line: &str) -> bool {
    crate::token::find_template_marker(line).is_some()
}

fn raw(reason: RawReason) -> WarningKind {
    WarningKind::KeptRaw { reason }
}

fn unsafe_reason(e: crate::Error) -> WarningKind {
    match e {
        crate::Error::Unsafe { problem, .. } => raw(RawReason::Token(problem)),
        // The token constructors only return `Unsafe`.
        _ => raw(RawReason::Token(Problem::Empty)),
    }
}

fn parse_line(text: &str) -> Result<Line, WarningKind> {
    let line = text.trim_matches(is_space);
    if line.is_empty() {
        return Ok(Line::Blank);
    }
    if is_template(line) {
        return Err(WarningKind::Template);
    }
    if let Some(body) = line.strip_prefix('#') {
        return Comment::new(body).map(Line::Comment).map_err(unsafe_reason);
    }
    if let Some(body) = line.strip_prefix(':') {
        if body.contains(is_space) {
            return Err(raw(RawReason::LabelWithCommand));
        }
        return Label::new(body)
            .map(Line::Label)
            .map_err(|_| raw(RawReason::BadLabel));
    }
    parse_statement(line).map(Line::Statement)
}

fn parse_statement(line: &str) -> Result<Statement, WarningKind> {
    // Tokens with their byte offsets, so a trailing comment keeps its spacing.
    let mut tokens: Vec<(usize, &str)> = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (is_space(c), start) {
            (true, Some(s)) => {
                tokens.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        tokens.push((s, &line[s..]));
    }

    let mut comment = None;
    if let Some(pos) = tokens.iter().position(|(_, t)| t.starts_with('#')) {
        let at = tokens[pos].0;
        comment = Some(Comment::new(&line[at + 1..]).map_err(unsafe_reason)?);
        tokens.truncate(pos);
    }

    let mut segments: Vec<(Option<Op>, Vec<&str>)> = vec![(None, Vec::new())];
    for (_, t) in &tokens {
        let op = match *t {
            "||" => Some(Op::Or),
            "&&" => Some(Op::And),
            ";" => Some(Op::Then),
            _ => None,
        };
        match op {
            Some(op) => segments.push((Some(op), Vec::new())),
            None => {
                if let Some(segment) = segments.last_mut() {
                    segment.1.push(t);
                }
            }
        }
    }

    let mut ignore_failure = false;
    if segments.len() > 1
        && let Some((Some(Op::Or), last)) = segments.last()
        && last.is_empty()
    {
        ignore_failure = true;
        segments.pop();
    }

    let mut commands = Vec::with_capacity(segments.len());
    for (op, words) in segments {
        if words.is_empty() {
            return Err(raw(RawReason::EmptyCommand));
        }
        commands.push((op, parse_command(&words)?));
    }
    let mut iter = commands.into_iter();
    let first = iter
        .next()
        .map(|(_, c)| c)
        .ok_or(raw(RawReason::EmptyCommand))?;
    let rest = iter.map(|(op, c)| (op.unwrap_or(Op::Then), c)).collect();
    Ok(Statement {
        first,
        rest,
        ignore_failure,
        comment,
    })
}

fn parse_command(tokens: &[&str]) -> Result<Command, WarningKind> {
    let words = tokens
        .iter()
        .map(|t| Word::new(*t).map_err(unsafe_reason))
        .collect::<Result<Vec<_>, _>>()?;
    let name = CommandName::new(tokens[0]).map_err(|_| raw(RawReason::BadCommandName))?;
    let args = &words[1..];
    Ok(
        known_command(name.as_str(), args).unwrap_or(Command::Other {
            name,
            args: args.to_vec(),
        }),
    )
}

/// A number in its canonical decimal form, so rendering gives the same text back.
fn number<T: std::str::FromStr + ToString>(w: &Word) -> Option<T> {
    let n: T = w.as_str().parse().ok()?;
    (n.to_string() == w.as_str()).then_some(n)
}

fn is_option(w: &Word) -> bool {
    w.as_str().starts_with('-')
}

/// The typed form of a known command, or `None` when its arguments take a form the model does
/// not cover (then the caller keeps it as [`Command::Other`]).
fn known_command(name: &str, args: &[Word]) -> Option<Command> {
    let cmd = match (name, args) {
        ("set", [n, value @ ..]) if !is_option(n) => Command::Set {
            name: n.clone(),
            value: value.to_vec(),
        },
        ("clear", [n]) if !is_option(n) => Command::Clear { name: n.clone() },
        ("inc", [n]) if !is_option(n) => Command::Inc {
            name: n.clone(),
            by: None,
        },
        ("inc", [n, by]) if !is_option(n) => Command::Inc {
            name: n.clone(),
            by: Some(by.clone()),
        },
        ("kernel", _) => Command::Kernel(image(args)?),
        ("initrd", _) => Command::Initrd(image(args)?),
        ("chain", _) => Command::Chain(image(args)?),
        ("boot", []) => Command::Boot { image: None },
        ("boot", [i]) if !is_option(i) => Command::Boot {
            image: Some(i.clone()),
        },
        ("imgargs", [i, rest @ ..]) if !is_option(i) => Command::Imgargs {
            image: i.clone(),
            args: rest.to_vec(),
        },
        ("imgfree", []) => Command::Imgfree { image: None },
        ("imgfree", [i]) if !is_option(i) => Command::Imgfree {
            image: Some(i.clone()),
        },
        ("goto", [l]) if !is_option(l) => Command::Goto { label: l.clone() },
        ("isset", [v]) if !is_option(v) => Command::Isset { value: v.clone() },
        ("iseq", [a, b]) if !is_option(a) => Command::Iseq {
            left: a.clone(),
            right: b.clone(),
        },
        ("echo", [n, rest @ ..]) if n.as_str() == "-n" => Command::Echo {
            no_newline: true,
            text: Text::from_words(rest.to_vec()).ok()?,
        },
        ("echo", _) => Command::Echo {
            no_newline: false,
            text: Text::from_words(args.to_vec()).ok()?,
        },
        ("sleep", [s]) => Command::Sleep {
            seconds: number(s)?,
        },
        ("dhcp", _) => Command::Dhcp(net_config(args)?),
        ("ifconf", _) => Command::Ifconf(net_config(args)?),
        ("prompt", _) => prompt(args)?,
        ("reboot", []) => Command::Reboot { warm: false },
        ("reboot", [w]) if w.as_str() == "--warm" => Command::Reboot { warm: true },
        ("poweroff", []) => Command::Poweroff,
        ("exit", []) => Command::Exit { status: None },
        ("exit", [s]) => Command::Exit {
            status: Some(number(s)?),
        },
        _ => return None,
    };
    Some(cmd)
}

fn image(args: &[Word]) -> Option<Image> {
    let mut name = None;
    let mut timeout_ms = None;
    let mut autofree = false;
    let mut replace = false;
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| is_option(a)) {
        match a.as_str() {
            "--name" if name.is_none() => {
                name = Some(args.get(i + 1)?.clone());
                i += 1;
            }
            "--timeout" if timeout_ms.is_none() => {
                timeout_ms = Some(number(args.get(i + 1)?)?);
                i += 1;
            }
            "--autofree" if !autofree => autofree = true,
            "--replace" if !replace => replace = true,
            _ => return None,
        }
        i += 1;
    }
    let uri = args.get(i)?.clone();
    Some(Image {
        name,
        timeout_ms,
        autofree,
        replace,
        uri,
        args: args[i + 1..].to_vec(),
    })
}

fn net_config(args: &[Word]) -> Option<NetConfig> {
    let mut cfg = NetConfig::default();
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| is_option(a)) {
        match a.as_str() {
            "--configurator" if cfg.configurator.is_none() => {
                cfg.configurator = Some(args.get(i + 1)?.clone());
                i += 1;
            }
            "--timeout" if cfg.timeout_ms.is_none() => {
                cfg.timeout_ms = Some(number(args.get(i + 1)?)?);
                i += 1;
            }
            _ => return None,
        }
        i += 1;
    }
    let interfaces = args[i..].to_vec();
    if interfaces.iter().any(is_option) {
        return None;
    }
    cfg.interfaces = interfaces;
    Some(cfg)
}

fn prompt(args: &[Word]) -> Option<Command> {
    let mut key = None;
    let mut timeout_ms = None;
    let mut i = 0;
    while let Some(a) = args.get(i).filter(|a| is_option(a)) {
        match a.as_str() {
            "--key" if key.is_none() => {
                key = Some(args.get(i + 1)?.clone());
                i += 1;
            }
            "--timeout" if timeout_ms.is_none() => {
                timeout_ms = Some(number(args.get(i + 1)?)?);
                i += 1;
            }
            _ => return None,
        }
        i += 1;
    }
    Some(Command::Prompt {
        key,
        timeout_ms,
        text: Text::from_words(args[i..].to_vec()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses one line after a magic line and checks how it renders back.
    fn check(input: &str, expected: &str) {
        let parsed = parse(&format!("#!ipxe\n{input}\n"));
        let rendered = parsed.script.render();
        assert_eq!(
            rendered
                .strip_prefix("#!ipxe\n")
                .unwrap()
                .trim_end_matches('\n'),
            expected,
            "input {input:?}, warnings {:?}",
            parsed.warnings
        );
        let again = parse(&rendered);
        assert_eq!(again.script, parsed.script, "round trip of {input:?}");
    }

    fn first(input: &str) -> Line {
        parse(&format!("#!ipxe\n{input}\n")).script.lines.remove(0)
    }

    #[test]
    fn lines_render_back() {
        check("  kernel   http://x/k  a=b   ", "kernel http://x/k a=b");
        check("dhcp && goto ok ||", "dhcp && goto ok ||");
        check(
            "isset ${ip} || dhcp || goto retry",
            "isset ${ip} || dhcp || goto retry",
        );
        check("echo hi # a  comment", "echo hi # a  comment");
        check("#  note", "#  note");
        check(":retry", ":retry");
        check(
            "kernel --timeout 5 --name k u",
            "kernel --name k --timeout 5 u",
        );
        check("sleep 05", "sleep 05");
        check("foo bar baz", "foo bar baz");
        check("{{ jinja }} x", "{{ jinja }} x");
        check(":label cmd", ":label cmd");
        check("|| goto x", "|| goto x");
        check("echo ${mac", "echo ${mac");
        check(
            "chain --replace --autofree http://x/y a",
            "chain --autofree --replace http://x/y a",
        );
        check("kernel a \\\nb", "kernel a b");
        check("kernel a\\\nb", "kernel ab");
    }

    #[test]
    fn typed_where_known() {
        assert!(matches!(
            first("set netid:int32 -1"),
            Line::Statement(Statement {
                first: Command::Set { .. },
                ..
            })
        ));
        assert!(matches!(
            first("sleep 05"),
            Line::Statement(Statement {
                first: Command::Other { .. },
                ..
            })
        ));
        assert!(matches!(
            first("prompt --timeout 180"),
            Line::Statement(Statement {
                first: Command::Prompt {
                    timeout_ms: Some(180),
                    ..
                },
                ..
            })
        ));
        assert!(matches!(first("echo ${mac"), Line::Raw(_)));
        assert!(matches!(first(":a b"), Line::Raw(_)));
    }

    #[test]
    fn warnings() {
        let p = parse("echo no magic\n{% if x %}\nkernel \\");
        let kinds: Vec<_> = p
            .warnings
            .iter()
            .map(|w| (w.line, w.kind.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (1, WarningKind::MissingMagic),
                (2, WarningKind::Template),
                (3, WarningKind::DanglingContinuation),
            ]
        );
        assert_eq!(p.script.magic, Magic::Missing);
        assert_eq!(
            p.warnings[1].to_string(),
            "line 2: template line kept verbatim"
        );
        let odd = parse("#!ipxe\necho ${mac\n");
        assert_eq!(
            odd.warnings[0].to_string(),
            "line 2: kept verbatim: a token is unsafe: the `${` at byte 0 is never closed by `}`"
        );
        assert_eq!(p.script.render(), "echo no magic\n{% if x %}\nkernel\n");
    }

    /// Found by the `ipxe_parse` fuzz target: an indented magic line used to parse as a comment
    /// that rendered back as the magic line, so parse -> render -> parse changed the script.
    #[test]
    fn indented_magic_is_the_magic_line() {
        for input in [" #!ipxe\n", "\t#!ipxe \necho hi\n", "\x0b#!gpxe\n"] {
            let p = parse(input);
            assert_ne!(p.script.magic, Magic::Missing, "{input:?}");
            assert_eq!(parse(&p.script.render()).script, p.script, "{input:?}");
        }
    }
}
