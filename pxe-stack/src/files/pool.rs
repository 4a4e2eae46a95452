//! Chunk buffers by power-of-two size, returned to the pool when the last `Bytes` made from
//! them is dropped (`Bytes::from_owner`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::MIN_CHUNK;
use crate::lock;

/// Chunk buffers by power-of-two size, returned here when the server is done with them, so a
/// storm of downloads reuses the same memory instead of asking the allocator for fresh chunks on
/// many threads (which fragments and keeps freed memory resident).
pub(crate) struct BufPool {
    free: Mutex<PoolFree>,
    keep: usize,
}

#[derive(Default)]
struct PoolFree {
    /// `classes[k]` holds idle buffers of `MIN_CHUNK << k` bytes.
    classes: Vec<Vec<Vec<u8>>>,
    bytes: usize,
}

/// A pooled buffer and how much of it holds data; back to the pool on drop.
pub(crate) struct PooledBuf {
    buf: Vec<u8>,
    filled: usize,
    pool: Arc<BufPool>,
}

impl PooledBuf {
    /// The part a read fills: `filled` bytes (the size asked for, at most the class size).
    pub(crate) fn space(&mut self) -> &mut [u8] {
        &mut self.buf[..self.filled]
    }

    /// Keeps the first `n` bytes (what a read returned) and hands them out as `Bytes`, which
    /// give the buffer back to the pool when the last of them is dropped.
    pub(crate) fn into_bytes(mut self, n: usize) -> Bytes {
        self.filled = n.min(self.filled);
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.filled]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

impl BufPool {
    /// A pool keeping at most `keep` bytes of idle buffers.
    pub(crate) fn new(keep: usize) -> Self {
        BufPool {
            free: Mutex::default(),
            keep,
        }
    }

    /// The size class for a read of `want` bytes: the largest power of two not above it, at
    /// least [`MIN_CHUNK`].
    fn class(want: usize) -> usize {
        let size = want.max(MIN_CHUNK);
        (usize::BITS - 1 - size.leading_zeros()) as usize - MIN_CHUNK.trailing_zeros() as usize
    }

    /// A buffer for a read of up to `want` bytes (its `filled` is the read size).
    pub(crate) fn take(self: &Arc<Self>, want: usize) -> PooledBuf {
        let class = Self::class(want);
        let size = MIN_CHUNK << class;
        let reused = {
            let mut free = lock(&self.free);
            let buf = free.classes.get_mut(class).and_then(Vec::pop);
            if buf.is_some() {
                free.bytes -= size;
            }
            buf
        };
        PooledBuf {
            buf: reused.unwrap_or_else(|| vec![0; size]),
            filled: size.min(want),
            pool: Arc::clone(self),
        }
    }

    fn give(&self, buf: Vec<u8>) {
        let size = buf.len();
        if !size.is_power_of_two() || size < MIN_CHUNK {
            return;
        }
        let class = Self::class(size);
        let mut free = lock(&self.free);
        if free.bytes + size > self.keep {
            return;
        }
        if free.classes.len() <= class {
            free.classes.resize_with(class + 1, Vec::new);
        }
        free.classes[class].push(buf);
        free.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_in_power_of_two_classes() {
        assert_eq!(BufPool::class(1), 0);
        assert_eq!(BufPool::class(MIN_CHUNK), 0);
        assert_eq!(BufPool::class(MIN_CHUNK * 2 - 1), 0);
        assert_eq!(BufPool::class(MIN_CHUNK * 2), 1);
        assert_eq!(BufPool::class(512 << 10), 7);
        assert_eq!(BufPool::class((512 << 10) + 1), 7);
    }

    #[test]
    fn buffers_are_reused_up_to_the_kept_bytes() {
        let pool = Arc::new(BufPool::new(3 * MIN_CHUNK));
        let a = pool.take(100);
        assert_eq!((a.buf.len(), a.filled), (MIN_CHUNK, 100));
        let a_ptr = a.buf.as_ptr();
        drop(a);
        let again = pool.take(MIN_CHUNK + 5);
        assert_eq!(again.buf.as_ptr(), a_ptr, "the idle buffer is reused");
        assert_eq!(again.filled, MIN_CHUNK, "a read never exceeds its class");
        let big: Vec<_> = (0..2).map(|_| pool.take(2 * MIN_CHUNK)).collect();
        drop(big);
        drop(again);
        let free = lock(&pool.free);
        // One 8 KiB buffer and the 4 KiB one are kept; the second 8 KiB one would exceed 12 KiB.
        assert_eq!(free.bytes, 3 * MIN_CHUNK);
        assert_eq!(free.classes[1].len(), 1);
    }

    #[test]
    fn bytes_give_the_buffer_back_when_dropped() {
        let pool = Arc::new(BufPool::new(4 * MIN_CHUNK));
        let mut buf = pool.take(10);
        buf.space().copy_from_slice(b"0123456789");
        let bytes = buf.into_bytes(4);
        assert_eq!(&bytes[..], b"0123");
        assert_eq!(lock(&pool.free).bytes, 0);
        drop(bytes);
        assert_eq!(lock(&pool.free).bytes, MIN_CHUNK);
    }
}
