//! Checked building blocks of a script line: tokens, labels, comments, text and settings.
//!
//! iPXE splits a line on whitespace before it expands settings, treats a token that starts
//! with `#` as the start of a comment, and treats the tokens `||`, `&&` and `;` as separators
//! (`src/core/exec.c`). A line that ends in `\` continues on the next one
//! (`src/image/script.c`). Every type here rejects values that would change how iPXE reads the
//! line; nothing is escaped silently.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem};

/// iPXE's `isspace()`: the characters that separate tokens.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn unsafe_err(what: &'static str, value: &str, problem: Problem) -> Error {
    Error::Unsafe {
        what,
        value: value.to_owned(),
        problem,
    }
}

/// Rejects line breaks and control characters (tabs are allowed where `allow_tab`).
fn check_chars(s: &str, allow_tab: bool) -> Result<(), Problem> {
    for (at, c) in s.char_indices() {
        match c {
            '\n' | '\r' => return Err(Problem::LineBreak { at }),
            '\t' if allow_tab => {}
            c if c.is_control() => return Err(Problem::Control { at }),
            _ => {}
        }
    }
    Ok(())
}

/// The markers of a Jinja-style template line; see [`Problem::TemplateMarker`].
pub(crate) fn find_template_marker(s: &str) -> Option<usize> {
    ["{{", "{%", "{#"].iter().filter_map(|m| s.find(m)).min()
}

/// Checks that every `${` has its `}`; returns the offset of the first unclosed one.
fn check_expansions(s: &str) -> Result<(), Problem> {
    let bytes = s.as_bytes();
    let mut open: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            open.push(i);
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            open.pop();
        }
        i += 1;
    }
    match open.first() {
        Some(&at) => Err(Problem::UnbalancedExpansion { at }),
        None => Ok(()),
    }
}

fn check_token(s: &str) -> Result<(), Problem> {
    if s.is_empty() {
        return Err(Problem::Empty);
    }
    for (at, c) in s.char_indices() {
        match c {
            '\n' | '\r' => return Err(Problem::LineBreak { at }),
            c if is_space(c) => return Err(Problem::Whitespace { at }),
            c if c.is_control() => return Err(Problem::Control { at }),
            _ => {}
        }
    }
    if s.starts_with('#') {
        return Err(Problem::CommentStart);
    }
    if matches!(s, "||" | "&&" | ";") {
        return Err(Problem::Separator);
    }
    if s.ends_with('\\') {
        return Err(Problem::TrailingBackslash);
    }
    if let Some(at) = find_template_marker(s) {
        return Err(Problem::TemplateMarker { at });
    }
    check_expansions(s)
}

/// One whitespace-free token of an iPXE command line: a command argument, a URL, a kernel
/// argument, a setting value.
///
/// It may contain settings expansions such as `${mac:hexhyp}` or `${net${netid}/mac}`, which
/// must be balanced. It may not contain whitespace or control characters, start with `#`, be a
/// separator (`||`, `&&`, `;`), end with `\`, or contain a template marker (`{{`, `{%`, `{#`,
/// which the parser treats as a template line).
///
/// ```
/// use ipxe_script::Word;
/// assert!(Word::new("http://10.0.0.1/ipxe?mac=${mac:hexhyp}").is_ok());
/// assert!(Word::new("two words").is_err());
/// assert!(Word::new("${mac").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Word(String);

impl Word {
    /// Checks `value` and wraps it.
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        match check_token(&value) {
            Ok(()) => Ok(Word(value)),
            Err(problem) => Err(Error::Unsafe {
                what: "token",
                value,
                problem,
            }),
        }
    }

    /// A literal known to be valid; checked in debug builds and by the snapshot tests.
    pub(crate) fn lit(value: &str) -> Self {
        debug_assert!(check_token(value).is_ok(), "bad literal token {value:?}");
        Word(value.to_owned())
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Word({:?})", self.0)
    }
}

impl TryFrom<String> for Word {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Word::new(value)
    }
}

impl TryFrom<&str> for Word {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self, Error> {
        Word::new(value)
    }
}

impl From<Word> for String {
    fn from(w: Word) -> String {
        w.0
    }
}

impl From<Setting> for Word {
    fn from(s: Setting) -> Word {
        Word(s.to_string())
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The name of a script label, written `:name` and jumped to with `goto name`.
///
/// A token that does not contain `$` (iPXE does not expand label lines).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// Checks `name` (without the leading `:`) and wraps it.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let problem = check_token(&name).err().or_else(|| {
            name.find('$')
                .map(|at| Problem::Character { at })
                .or_else(|| name.starts_with(':').then_some(Problem::LabelStart))
        });
        match problem {
            None => Ok(Label(name)),
            Some(problem) => Err(unsafe_err("label", &name, problem)),
        }
    }

    pub(crate) fn lit(name: &str) -> Self {
        debug_assert!(Label::new(name).is_ok(), "bad literal label {name:?}");
        Label(name.to_owned())
    }

    /// The label's name, without the leading `:`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Label({:?})", self.0)
    }
}

impl TryFrom<String> for Label {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Label::new(value)
    }
}

impl From<Label> for String {
    fn from(l: Label) -> String {
        l.0
    }
}

impl From<Label> for Word {
    fn from(l: Label) -> Word {
        Word(l.0)
    }
}

/// The text of a comment, after its `#`: anything but line breaks and control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Comment(String);

impl Comment {
    /// Checks `text` and wraps it.
    pub fn new(text: impl Into<String>) -> Result<Self, Error> {
        let text = text.into();
        match check_chars(&text, true) {
            Ok(()) if text.ends_with('\\') => {
                Err(unsafe_err("comment", &text, Problem::TrailingBackslash))
            }
            Ok(()) if find_template_marker(&text).is_some() => {
                let at = find_template_marker(&text).unwrap_or(0);
                Err(unsafe_err("comment", &text, Problem::TemplateMarker { at }))
            }
            Ok(()) => Ok(Comment(text)),
            Err(problem) => Err(unsafe_err("comment", &text, problem)),
        }
    }

    pub(crate) fn lit(text: &str) -> Self {
        debug_assert!(Comment::new(text).is_ok(), "bad literal comment {text:?}");
        Comment(text.to_owned())
    }

    /// The comment's text, without the `#`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A line kept verbatim: what the parser could not model (templates, odd syntax).
///
/// It may not contain a line break or end with `\`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawLine(String);

impl RawLine {
    /// Checks `line` and wraps it.
    pub fn new(line: impl Into<String>) -> Result<Self, Error> {
        let line = line.into();
        if let Some(at) = line.find(['\n', '\r']) {
            return Err(unsafe_err("line", &line, Problem::LineBreak { at }));
        }
        if line.ends_with('\\') {
            return Err(unsafe_err("line", &line, Problem::TrailingBackslash));
        }
        Ok(RawLine(line))
    }

    /// The line's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text for `echo` and `prompt`: whitespace-separated [`Word`]s.
///
/// iPXE joins the words back with single spaces, so runs of spaces collapse. The first word may
/// not start with `-` (the command would read it as an option), no word may start with `#` or be
/// a separator, and line breaks are rejected.
///
/// ```
/// use ipxe_script::Text;
/// assert_eq!(Text::new("hello  ${mac}").unwrap().to_string(), "hello ${mac}");
/// assert!(Text::new("attempt #3").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Text(Vec<Word>);

impl Text {
    /// Splits `text` on whitespace and checks every word.
    pub fn new(text: &str) -> Result<Self, Error> {
        if let Err(problem) = check_chars(text, true) {
            return Err(unsafe_err("text", text, problem));
        }
        let words = text
            .split(is_space)
            .filter(|w| !w.is_empty())
            .map(|w| Word::new(w).map_err(|e| retag(e, "text", text)))
            .collect::<Result<Vec<_>, _>>()?;
        Text::from_words(words)
    }

    /// Wraps words that are already checked, rejecting a leading `-`.
    pub fn from_words(words: Vec<Word>) -> Result<Self, Error> {
        if let Some(first) = words.first()
            && first.as_str().starts_with('-')
        {
            return Err(unsafe_err("text", first.as_str(), Problem::OptionStart));
        }
        Ok(Text(words))
    }

    pub(crate) fn lit(text: &str) -> Self {
        debug_assert!(Text::new(text).is_ok(), "bad literal text {text:?}");
        Text(
            text.split(' ')
                .filter(|w| !w.is_empty())
                .map(Word::lit)
                .collect(),
        )
    }

    /// The words.
    pub fn words(&self) -> &[Word] {
        &self.0
    }

    /// Whether there are no words.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(w.as_str())?;
        }
        Ok(())
    }
}

fn retag(e: Error, what: &'static str, whole: &str) -> Error {
    match e {
        Error::Unsafe { problem, .. } => unsafe_err(what, whole, problem),
        other => other,
    }
}

/// The name of a command iPXE will look up: a [`Word`] that does not start with `:` (a label)
/// or `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandName(String);

impl CommandName {
    /// Checks `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let problem = check_token(&name).err().or_else(|| {
            if name.starts_with(':') {
                Some(Problem::LabelStart)
            } else if name.starts_with('-') {
                Some(Problem::OptionStart)
            } else {
                None
            }
        });
        match problem {
            None => Ok(CommandName(name)),
            Some(problem) => Err(unsafe_err("command", &name, problem)),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandName({:?})", self.0)
    }
}

/// How iPXE formats a setting when it expands it (the `:type` suffix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SettingType {
    /// `:hex`, colon-separated hex (`52:54:00:12:34:56`).
    Hex,
    /// `:hexhyp`, hyphen-separated hex (`52-54-00-12-34-56`).
    Hexhyp,
    /// `:hexraw`, hex without separators.
    Hexraw,
    /// `:string`.
    String,
    /// `:uristring`, percent-encoded for use inside a URI.
    Uristring,
    /// `:int32`.
    Int32,
    /// `:uint32`.
    Uint32,
    /// `:ipv4`.
    Ipv4,
    /// `:uuid`.
    Uuid,
}

impl SettingType {
    /// The suffix without its colon.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::Hex => "hex",
            SettingType::Hexhyp => "hexhyp",
            SettingType::Hexraw => "hexraw",
            SettingType::String => "string",
            SettingType::Uristring => "uristring",
            SettingType::Int32 => "int32",
            SettingType::Uint32 => "uint32",
            SettingType::Ipv4 => "ipv4",
            SettingType::Uuid => "uuid",
        }
    }
}

/// A settings expansion such as `${mac:hexhyp}`, `${net0/mac}` or `${net${netid}/mac}`.
///
/// Converts into a [`Word`] and displays as the `${...}` text, so it can be spliced into URLs:
///
/// ```
/// use ipxe_script::{Setting, SettingType, Word};
/// let url = format!("http://10.0.0.1/ipxe?mac={}", Setting::mac().typed(SettingType::Hexhyp));
/// assert_eq!(url, "http://10.0.0.1/ipxe?mac=${mac:hexhyp}");
/// let counter = Setting::new("netid").unwrap();
/// assert_eq!(Setting::mac().scoped(&format!("net{counter}")).unwrap().to_string(), "${net${netid}/mac}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Setting {
    scope: Option<String>,
    name: String,
    kind: Option<SettingType>,
}

fn check_setting_part(what: &'static str, s: &str) -> Result<(), Error> {
    // A part is a token whose only braces belong to nested expansions, and which holds no `:`
    // or `/` outside them (those would split scope, name and type differently).
    check_token(s).map_err(|p| unsafe_err(what, s, p))?;
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth > 0 => depth -= 1,
            b'}' | b'{' | b':' | b'/' if depth == 0 => {
                return Err(unsafe_err(what, s, Problem::Character { at: i }));
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

impl Setting {
    /// A setting by name, such as `hostname` or `netid`; the name may hold nested expansions.
    pub fn new(name: &str) -> Result<Self, Error> {
        check_setting_part("setting", name)?;
        Ok(Setting {
            scope: None,
            name: name.to_owned(),
            kind: None,
        })
    }

    fn known(name: &str) -> Self {
        Setting {
            scope: None,
            name: name.to_owned(),
            kind: None,
        }
    }

    /// `${mac}`: the MAC address of the most recently opened network device.
    pub fn mac() -> Self {
        Setting::known("mac")
    }

    /// `${uuid}`: the SMBIOS system UUID.
    pub fn uuid() -> Self {
        Setting::known("uuid")
    }

    /// `${serial}`: the SMBIOS serial number.
    pub fn serial() -> Self {
        Setting::known("serial")
    }

    /// `${buildarch}`: `i386`, `x86_64`, `arm32`, `arm64`, ...
    pub fn buildarch() -> Self {
        Setting::known("buildarch")
    }

    /// `${platform}`: `pcbios`, `efi` or `linux`.
    pub fn platform() -> Self {
        Setting::known("platform")
    }

    /// `${ip}`: the IPv4 address, empty before DHCP.
    pub fn ip() -> Self {
        Setting::known("ip")
    }

    /// `${hostname}`.
    pub fn hostname() -> Self {
        Setting::known("hostname")
    }

    /// `${netN/mac}`: the MAC address of network device `n`.
    pub fn net_mac(n: u32) -> Self {
        Setting {
            scope: Some(format!("net{n}")),
            name: "mac".to_owned(),
            kind: None,
        }
    }

    /// The same setting looked up in `scope` (`net0`, `net${netid}`, `smbios`, ...).
    pub fn scoped(mut self, scope: &str) -> Result<Self, Error> {
        check_setting_part("setting scope", scope)?;
        self.scope = Some(scope.to_owned());
        Ok(self)
    }

    /// The same setting expanded with a `:type` suffix.
    pub fn typed(mut self, kind: SettingType) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The setting's name without scope or type, as `set`, `inc` and `isset` take it.
    pub fn name(&self) -> String {
        match &self.scope {
            Some(scope) => format!("{scope}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("${")?;
        if let Some(scope) = &self.scope {
            write!(f, "{scope}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(kind) = self.kind {
            write!(f, ":{}", kind.as_str())?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(), Problem>) {
        let got = Word::new(input).map(|_| ()).map_err(|e| match e {
            Error::Unsafe { problem, .. } => problem,
            other => panic!("unexpected error {other:?}"),
        });
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn words() {
        check("kernel", Ok(()));
        check("http://x/a#frag", Ok(()));
        check("${net${netid}/mac:hexhyp}", Ok(()));
        check("a}b", Ok(()));
        check("{x}", Ok(()));
        check("a{{", Err(Problem::TemplateMarker { at: 1 }));
        check("{%", Err(Problem::TemplateMarker { at: 0 }));
        check("", Err(Problem::Empty));
        check("a b", Err(Problem::Whitespace { at: 1 }));
        check("a\tb", Err(Problem::Whitespace { at: 1 }));
        check("a\nb", Err(Problem::LineBreak { at: 1 }));
        check("a\rb", Err(Problem::LineBreak { at: 1 }));
        check("a\x00b", Err(Problem::Control { at: 1 }));
        check("#x", Err(Problem::CommentStart));
        check("||", Err(Problem::Separator));
        check("&&", Err(Problem::Separator));
        check(";", Err(Problem::Separator));
        check("a\\", Err(Problem::TrailingBackslash));
        check("${mac", Err(Problem::UnbalancedExpansion { at: 0 }));
        check("x${a${b}", Err(Problem::UnbalancedExpansion { at: 1 }));
        check("${a}${", Err(Problem::UnbalancedExpansion { at: 4 }));
    }

    #[test]
    fn text_and_labels() {
        assert_eq!(Text::new(" a  b\t c ").unwrap().to_string(), "a b c");
        assert!(Text::new("").unwrap().is_empty());
        assert!(matches!(
            Text::new("-n hello"),
            Err(Error::Unsafe {
                problem: Problem::OptionStart,
                ..
            })
        ));
        assert!(Text::new("a || b").is_err());
        assert!(Text::new("line\nbreak").is_err());
        assert!(Label::new("retry_boot").is_ok());
        assert!(Label::new("a${b}").is_err());
        assert!(Label::new("two words").is_err());
        assert!(Comment::new(" NOTE: fine # too").is_ok());
        assert!(Comment::new("bad\nline").is_err());
        assert!(RawLine::new("{{ template }}").is_ok());
        assert!(RawLine::new("x\ny").is_err());
        assert!(CommandName::new(":label").is_err());
    }

    #[test]
    fn settings() {
        assert_eq!(
            Setting::mac().typed(SettingType::Hexhyp).to_string(),
            "${mac:hexhyp}"
        );
        assert_eq!(Setting::net_mac(0).to_string(), "${net0/mac}");
        let nested = Setting::mac()
            .scoped("net${netid}")
            .unwrap()
            .typed(SettingType::Hexhyp);
        assert_eq!(nested.to_string(), "${net${netid}/mac:hexhyp}");
        assert_eq!(nested.name(), "net${netid}/mac");
        assert!(Setting::new("a:b").is_err());
        assert!(Setting::new("a}").is_err());
        assert!(Setting::new("a b").is_err());
        assert!(Word::new(Setting::uuid().to_string()).is_ok());
    }
}
