//! Progress reporting: a small trait the fetcher calls; the example renders it with indicatif.

use crate::error::Error;

/// Something that happened to one artifact's transfer. `name` is the artifact's file name.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProgressEvent<'a> {
    /// A transfer began (or began again from zero); `total` is the download size when known.
    Started {
        /// Artifact file name.
        name: &'a str,
        /// Size as downloaded, when known.
        total: Option<u64>,
    },
    /// More bytes arrived.
    Advanced {
        /// Artifact file name.
        name: &'a str,
        /// Bytes done so far (as downloaded).
        done: u64,
        /// Size as downloaded, when known.
        total: Option<u64>,
    },
    /// An attempt failed and will be retried after a backoff.
    Retrying {
        /// Artifact file name.
        name: &'a str,
        /// Number of the attempt that will follow (2 = first retry).
        attempt: u32,
        /// Why the last attempt failed.
        error: &'a Error,
    },
    /// Received data was thrown away and the transfer restarts from byte zero.
    Restarted {
        /// Artifact file name.
        name: &'a str,
        /// Why (for example "validator changed").
        reason: &'a str,
    },
    /// The artifact was already in the cache, verified; nothing was downloaded.
    Cached {
        /// Artifact file name.
        name: &'a str,
    },
    /// The artifact is downloaded and verified.
    Finished {
        /// Artifact file name.
        name: &'a str,
    },
}

/// Receives [`ProgressEvent`]s. Called from async tasks, so it must be cheap and not block.
///
/// Any `Fn(&ProgressEvent<'_>) + Send + Sync` closure is a `Progress`.
pub trait Progress: Send + Sync {
    /// Handles one event.
    fn event(&self, event: &ProgressEvent<'_>);
}

impl<F: Fn(&ProgressEvent<'_>) + Send + Sync> Progress for F {
    fn event(&self, event: &ProgressEvent<'_>) {
        self(event)
    }
}

/// Ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: &ProgressEvent<'_>) {}
}
