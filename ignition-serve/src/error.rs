//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading, matching or rendering Ignition configs.
///
/// Messages never carry config content: configs hold secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file or directory failed.
    #[error("cannot read {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not JSON (or not a JSON object).
    #[error("{origin} is not valid json")]
    Json {
        /// Where the bytes came from (a file name, a role name or `<memory>`).
        origin: String,
        /// The parser's error (line and column; never content).
        #[source]
        source: serde_json::Error,
    },
    /// The config has no `ignition.version` string.
    #[error("{origin} has no ignition.version")]
    MissingVersion {
        /// Where the config came from.
        origin: String,
    },
    /// The config declares a spec version this crate does not handle.
    #[error("{origin} declares unsupported ignition spec version {version:?}")]
    UnsupportedVersion {
        /// Where the config came from.
        origin: String,
        /// The declared version.
        version: String,
    },
    /// A field of the config has the wrong type or an invalid value.
    #[error("{origin} is invalid at {pointer}: {reason}")]
    Invalid {
        /// Where the config came from.
        origin: String,
        /// JSON pointer of the offending value.
        pointer: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two entries of a spec 3.x config share a path (files, directories, links) or a name
    /// (units, users), which Ignition rejects.
    #[error("{origin} has duplicate entry {key:?} at {pointer}")]
    Duplicate {
        /// Where the config came from.
        origin: String,
        /// JSON pointer of the second entry.
        pointer: String,
        /// The duplicated path or name.
        key: String,
    },
    /// A per-host customization is unusable (bad path, hostname or name).
    #[error("invalid customization {field}: {reason}")]
    Customization {
        /// The field, such as `hostname` or `files[2].path`.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A customization would replace an entry the role config defines as a different node kind.
    #[error("customization path {path} is a directory or link in the role config")]
    PathConflict {
        /// The path.
        path: String,
    },
    /// Two groups have the same number of selectors and can match the same machine.
    #[error("groups {first:?} and {second:?} are equally specific and can match the same machine")]
    AmbiguousGroups {
        /// The group added first.
        first: String,
        /// The group added second.
        second: String,
    },
    /// The role config a host's group names is not loaded (yet): serve a 503.
    #[error("role config {role:?} is not loaded")]
    RoleNotReady {
        /// The role.
        role: String,
    },
    /// A group id is used twice.
    #[error("duplicate group id {id:?}")]
    DuplicateGroup {
        /// The id.
        id: String,
    },
    /// A role name is not usable as a file stem and URL path segment.
    #[error("invalid role name {role:?}: use letters, digits, '-', '_' and '.'")]
    InvalidRole {
        /// The name.
        role: String,
    },
    /// The pointer URL for a pointer config is empty or not absolute.
    #[error("invalid pointer url {url:?}")]
    InvalidUrl {
        /// The URL.
        url: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
