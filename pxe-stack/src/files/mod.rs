//! File serving shared by the TFTP and HTTP servers: one path-confinement function, and one way
//! to read large files without blocking the runtime or growing memory with the number of
//! downloads.
//!
//! - [`confine`] and [`open_beneath`] keep every request under the served root, symlinks
//!   included: the check and the open are one `openat2(RESOLVE_BENEATH)`.
//! - [`FileStream`] reads a file range in chunks: in place from the page cache with
//!   `preadv2(RWF_NOWAIT)`, on a few shared reader threads otherwise ([`reader`]).
//! - Chunks come from a pool of power-of-two buffers ([`pool`]) that they return to when
//!   dropped, and shrink as downloads share the server's memory budget ([`budget`]).

mod budget;
mod confine;
mod pool;
mod reader;

pub(crate) use confine::{Unservable, canonical_root, confine, open_beneath};
pub(crate) use reader::{FileIo, FileStream};

/// The smallest read (and buffer), so that even a thousand downloads make progress in sensible
/// steps.
const MIN_CHUNK: usize = 4 * 1024;
