//! Where bytes come from: the metadata's own URLs, an HTTP mirror, or a local mirror directory.

use std::path::{Path, PathBuf};

use url::Url;

use crate::error::{Error, Result};
use crate::select::Artifact;

/// A concrete place to read an artifact or a metadata document from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// An `http://` or `https://` URL.
    Http(Url),
    /// A local file (from `file://` or a plain path).
    File(PathBuf),
}

impl Location {
    /// Parses `http(s)://…`, `file://…`, or a plain filesystem path.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidLocation {
            location: s.to_owned(),
        };
        if s.contains("://") {
            let url = Url::parse(s).map_err(|_| invalid())?;
            match url.scheme() {
                "http" | "https" => Ok(Location::Http(url)),
                "file" => url
                    .to_file_path()
                    .map(Location::File)
                    .map_err(|()| invalid()),
                _ => Err(invalid()),
            }
        } else if s.is_empty() {
            Err(invalid())
        } else {
            Ok(Location::File(PathBuf::from(s)))
        }
    }

    /// The location as text, for errors and progress.
    pub fn display(&self) -> String {
        match self {
            Location::Http(u) => u.to_string(),
            Location::File(p) => p.display().to_string(),
        }
    }
}

/// How to turn an [`Artifact`]'s metadata URL into a [`Location`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Use the URL in the metadata as is.
    #[default]
    Upstream,
    /// An HTTP mirror: the artifact's file name is appended to this base URL.
    MirrorUrl(Url),
    /// A local mirror directory (air-gapped sites mirror once): the artifact's file name in it.
    MirrorDir(PathBuf),
}

impl Source {
    /// A mirror from text: an `http(s)://` base URL or a directory (plain path or `file://`).
    pub fn mirror(s: &str) -> Result<Self> {
        match Location::parse(s)? {
            Location::Http(mut url) => {
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                Ok(Source::MirrorUrl(url))
            }
            Location::File(dir) => Ok(Source::MirrorDir(dir)),
        }
    }

    /// Resolves where to read `artifact` from.
    pub fn locate(&self, artifact: &Artifact) -> Result<Location> {
        match self {
            Source::Upstream => Location::parse(&artifact.location),
            Source::MirrorUrl(base) => {
                base.join(&artifact.name)
                    .map(Location::Http)
                    .map_err(|_| Error::InvalidLocation {
                        location: format!("{base}{}", artifact.name),
                    })
            }
            Source::MirrorDir(dir) => Ok(Location::File(mirror_path(dir, &artifact.name))),
        }
    }
}

impl Source {
    /// Resolves where to read `artifact`'s detached signature from: the metadata's signature URL
    /// (or `<location>.sig`) upstream, `<name>.sig` in a mirror.
    pub fn locate_signature(&self, artifact: &Artifact) -> Result<Location> {
        let sig_name = format!("{}.sig", artifact.name);
        match self {
            Source::Upstream => Location::parse(&artifact.signature_url()),
            Source::MirrorUrl(base) => {
                base.join(&sig_name)
                    .map(Location::Http)
                    .map_err(|_| Error::InvalidLocation {
                        location: format!("{base}{sig_name}"),
                    })
            }
            Source::MirrorDir(dir) => Ok(Location::File(mirror_path(dir, &sig_name))),
        }
    }
}

fn mirror_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
