//! The memory budget shared by every file download of one server, and each download's share of
//! it: chunks shrink as more downloads run, so memory stays flat as clients are added.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::MIN_CHUNK;

/// The memory budget shared by every file download of one server.
#[derive(Debug, Clone)]
pub(crate) struct ChunkBudget {
    bytes: usize,
    max_chunk: usize,
    active: Arc<AtomicUsize>,
}

/// One download's share of the budget; leaving it (drop) frees the share.
pub(crate) struct Share {
    bytes: usize,
    max_chunk: usize,
    active: Arc<AtomicUsize>,
}

impl ChunkBudget {
    /// `bytes` for all downloads together, chunks of at most `max_chunk` (and at least
    /// [`MIN_CHUNK`]) bytes.
    pub(crate) fn new(bytes: usize, max_chunk: usize) -> Self {
        ChunkBudget {
            bytes,
            max_chunk: max_chunk.max(MIN_CHUNK),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A share for one more download.
    pub(crate) fn join(&self) -> Share {
        self.active.fetch_add(1, Ordering::Relaxed);
        Share {
            bytes: self.bytes,
            max_chunk: self.max_chunk,
            active: self.active.clone(),
        }
    }
}

impl Share {
    /// This download's next read size: at most the largest chunk, and about half its share of
    /// the budget (a download holds up to two chunks: the one the connection is writing and the
    /// one being read).
    pub(crate) fn chunk(&self) -> usize {
        let active = self.active.load(Ordering::Relaxed).max(1);
        (self.bytes / (2 * active)).clamp(MIN_CHUNK, self.max_chunk)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_shrink_as_downloads_share_the_budget() {
        let budget = ChunkBudget::new(64 << 20, 512 << 10);
        let first = budget.join();
        assert_eq!(first.chunk(), 512 << 10, "alone: the full chunk");
        let many: Vec<_> = (0..999).map(|_| budget.join()).collect();
        let c = first.chunk();
        assert!((MIN_CHUNK..512 << 10).contains(&c), "{c}");
        assert!(2 * c * 1000 <= (64 << 20) + 2 * MIN_CHUNK * 1000);
        drop(many);
        assert_eq!(first.chunk(), 512 << 10, "shares come back");
    }
}
