//! The crate's one error type.

use std::fmt;

use crate::kargs::Generation;

/// Everything that can go wrong when building a script or a kernel command line.
///
/// Parsing never fails: the parser keeps what it cannot model as raw lines and reports
/// [`Warning`](crate::Warning)s instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value that would change the meaning of the script if written as is.
    #[error("{what} {value:?} would break the script: {problem}")]
    Unsafe {
        /// What the value was meant to be (`token`, `label`, `comment`, ...).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        problem: Problem,
    },
    /// A kernel argument this crate refuses to emit, such as `rd.break`.
    #[error("kernel argument {arg:?} is not allowed")]
    ForbiddenArg {
        /// The rejected argument.
        arg: String,
    },
    /// An extra kernel argument that a typed field already controls.
    #[error("kernel argument {key:?} has a typed field; set that instead of an extra argument")]
    DuplicateArg {
        /// The argument's key.
        key: String,
    },
    /// A kernel argument that the chosen installer generation does not understand.
    #[error("{arg} is not supported by the {generation} installer")]
    Unsupported {
        /// The argument's key.
        arg: &'static str,
        /// The chosen generation.
        generation: Generation,
    },
    /// A kernel argument that this combination needs.
    #[error("{arg} is required for a {purpose}")]
    Missing {
        /// The argument's key.
        arg: &'static str,
        /// What is being built, such as `legacy install`.
        purpose: &'static str,
    },
    /// Two kernel arguments that cannot be used together.
    #[error("{arg} cannot be combined with {other}")]
    Conflict {
        /// The argument's key.
        arg: &'static str,
        /// The other argument or the mode it conflicts with.
        other: &'static str,
    },
    /// An install device that the generation cannot address.
    #[error("install device {device:?} cannot be given to the {generation} installer")]
    InvalidDevice {
        /// The rejected device.
        device: String,
        /// The chosen generation.
        generation: Generation,
    },
    /// A value with the wrong shape for its kernel argument.
    #[error("invalid value {value:?} for {arg}")]
    InvalidValue {
        /// The argument's key.
        arg: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A retry policy with no attempts at all.
    #[error("a retry policy needs at least one attempt")]
    NoAttempts,
}

/// Why a value was rejected by [`Error::Unsafe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// The value is empty where iPXE expects a token.
    Empty,
    /// The value contains whitespace, so iPXE would split it into several tokens.
    Whitespace {
        /// Byte offset of the first whitespace character.
        at: usize,
    },
    /// The value contains a line break, which would end the command.
    LineBreak {
        /// Byte offset of the line break.
        at: usize,
    },
    /// The value contains another control character.
    Control {
        /// Byte offset of the control character.
        at: usize,
    },
    /// A `${` settings expansion is never closed by `}`.
    UnbalancedExpansion {
        /// Byte offset of the unclosed `${`.
        at: usize,
    },
    /// The value starts with `#`, which iPXE reads as the start of a comment.
    CommentStart,
    /// The value is one of iPXE's command separators `||`, `&&` or `;`.
    Separator,
    /// The value ends with `\`, which iPXE reads as a line continuation.
    TrailingBackslash,
    /// The value starts with `:`, which would turn the line into a label.
    LabelStart,
    /// The value starts with `-`, which the command would read as an option.
    OptionStart,
    /// The value contains a double quote, which the kernel command line treats specially.
    Quote {
        /// Byte offset of the quote.
        at: usize,
    },
    /// The value contains `{{`, `{%` or `{#`, which marks a template line: the parser keeps such
    /// lines raw, and a template engine would rewrite them.
    TemplateMarker {
        /// Byte offset of the marker.
        at: usize,
    },
    /// The value contains a single quote, which would end GRUB's quoting.
    SingleQuote {
        /// Byte offset of the quote.
        at: usize,
    },
    /// The value contains a backslash, which GRUB's `linux` command escapes again.
    Backslash {
        /// Byte offset of the backslash.
        at: usize,
    },
    /// The value contains `$`: a GRUB configuration holds final values, never run-time
    /// expansions (an iPXE `${mac}` left in it would reach the kernel as is).
    Expansion {
        /// Byte offset of the `$`.
        at: usize,
    },
    /// The value contains a character not allowed here.
    Character {
        /// Byte offset of the character.
        at: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("it is empty"),
            Problem::Whitespace { at } => write!(f, "whitespace at byte {at} would split it"),
            Problem::LineBreak { at } => write!(f, "a line break at byte {at} would end the line"),
            Problem::Control { at } => write!(f, "control character at byte {at}"),
            Problem::UnbalancedExpansion { at } => {
                write!(f, "the `${{` at byte {at} is never closed by `}}`")
            }
            Problem::CommentStart => f.write_str("a leading `#` would start a comment"),
            Problem::Separator => f.write_str("it is a command separator"),
            Problem::TrailingBackslash => {
                f.write_str("a trailing backslash would join the next line")
            }
            Problem::LabelStart => f.write_str("a leading `:` would make the line a label"),
            Problem::OptionStart => f.write_str("a leading `-` would be read as an option"),
            Problem::Quote { at } => write!(f, "double quote at byte {at}"),
            Problem::TemplateMarker { at } => write!(f, "template marker at byte {at}"),
            Problem::SingleQuote { at } => write!(f, "single quote at byte {at}"),
            Problem::Backslash { at } => write!(f, "backslash at byte {at}"),
            Problem::Expansion { at } => write!(f, "`$` expansion at byte {at}"),
            Problem::Character { at } => write!(f, "character not allowed here at byte {at}"),
        }
    }
}
