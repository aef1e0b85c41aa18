//! File buffers kept for the next file. A fresh buffer of several MiB is mapped by the allocator, and the
//! kernel faults in and zeroes each of its pages on first write (~5% of a landing's CPU in a profile);
//! a buffer kept from an earlier file is already resident.
//!
//! A file starts at a 4096-byte boundary inside its buffer, so that the `file://` store writes it to the
//! disk straight from there with `O_DIRECT` instead of through a staging copy.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use streamlake_core::rawzone::store::local::DIRECT_IO_ALIGN;

/// Where a file starts in its buffer: the `file://` store's `O_DIRECT` alignment.
const FILE_ALIGN: usize = DIRECT_IO_ALIGN;

#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Most bytes (capacity) kept unused; a buffer that would exceed it is freed.
    max_kept_bytes: usize,
}

impl BufferPool {
    pub fn new(max_kept_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            max_kept_bytes,
        })
    }

    /// A buffer with room for a file of at least `capacity` bytes, kept or new, and where the file starts
    /// in it: the bytes before are padding up to a block boundary, to be written after.
    pub fn take(&self, capacity: usize) -> (Vec<u8>, usize) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        // The largest kept buffer: a small one would grow, copying what was written so far.
        let largest = (0..free.len()).max_by_key(|i| free[*i].capacity());
        let mut buffer = largest.map(|i| free.swap_remove(i)).unwrap_or_default();
        drop(free);
        buffer.reserve(capacity + FILE_ALIGN);
        let start = buffer.as_ptr().align_offset(FILE_ALIGN).min(FILE_ALIGN);
        buffer.resize(start, 0);
        (buffer, start)
    }

    /// The finished file: `data` from `start` (as [`BufferPool::take`] gave them); the buffer comes back
    /// to the pool when the last clone is dropped.
    pub fn freeze(self: &Arc<Self>, data: Vec<u8>, start: usize) -> Bytes {
        Bytes::from_owner(Returned {
            data,
            pool: self.clone(),
        })
        .slice(start..)
    }

    /// Keeps `buffer` for a later file, if there is room.
    pub fn give_back(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if kept + buffer.capacity() <= self.max_kept_bytes {
            free.push(buffer);
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// A pooled buffer lent to [`Bytes`].
struct Returned {
    data: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_returns_when_its_last_clone_is_dropped_and_is_reused() {
        let pool = BufferPool::new(1 << 20);
        let (mut buffer, start) = pool.take(1000);
        buffer.extend_from_slice(b"hello");
        let address = buffer.as_ptr();
        let bytes = pool.freeze(buffer, start);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(pool.kept(), 0, "a clone still reads it");
        assert_eq!(&clone[..], b"hello");
        drop(clone);
        assert_eq!(pool.kept(), 1);
        let (again, start_again) = pool.take(10);
        assert_eq!((again.len(), start_again), (start, start), "only the padding");
        assert_eq!(again.as_ptr(), address, "the same memory");
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn files_start_at_a_block_boundary() {
        let pool = BufferPool::new(0);
        for capacity in [0, 1, 4095, 4096, 100_000, 3 << 20] {
            let (mut buffer, start) = pool.take(capacity);
            assert_eq!(buffer.len(), start);
            assert!(buffer.iter().all(|&b| b == 0));
            buffer.extend(std::iter::repeat_n(9u8, capacity));
            let file = pool.freeze(buffer, start);
            assert_eq!(file.len(), capacity);
            assert!(file.iter().all(|&b| b == 9), "no padding in the file");
            assert_eq!(file.as_ptr().align_offset(FILE_ALIGN), 0, "capacity {capacity}");
        }
    }

    #[test]
    fn keeps_no_more_than_its_limit() {
        let pool = BufferPool::new(3000);
        let files: Vec<Bytes> = (0..3).map(|_| pool.freeze(Vec::with_capacity(1000), 0)).collect();
        drop(files);
        assert_eq!(pool.kept(), 3);
        drop(pool.freeze(Vec::with_capacity(1000), 0));
        assert_eq!(pool.kept(), 3, "a fourth would exceed 3000 bytes");
        drop(pool.freeze(Vec::with_capacity(5000), 0));
        assert_eq!(pool.kept(), 3);
    }
}
