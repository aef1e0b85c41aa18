//! File buffers kept for the next file. A fresh buffer of several MiB is mapped by the allocator, and the
//! kernel faults in and zeroes each of its pages on first write (~5% of a landing's CPU in a profile);
//! a buffer kept from an earlier file is already resident.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

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

    /// An empty buffer with room for at least `capacity` bytes, kept or new.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        // The largest kept buffer: a small one would grow, copying what was written so far.
        let largest = (0..free.len()).max_by_key(|i| free[*i].capacity());
        let mut buffer = largest.map(|i| free.swap_remove(i)).unwrap_or_default();
        drop(free);
        buffer.reserve(capacity);
        buffer
    }

    /// The finished file's bytes; the buffer comes back to the pool when the last clone is dropped.
    pub fn freeze(self: &Arc<Self>, data: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returned {
            data,
            pool: self.clone(),
        })
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
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
        let mut buffer = pool.take(1000);
        buffer.extend_from_slice(b"hello");
        let address = buffer.as_ptr();
        let bytes = pool.freeze(buffer);
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(pool.kept(), 0, "a clone still reads it");
        assert_eq!(&clone[..], b"hello");
        drop(clone);
        assert_eq!(pool.kept(), 1);
        let again = pool.take(10);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same memory");
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn keeps_no_more_than_its_limit() {
        let pool = BufferPool::new(3000);
        let files: Vec<Bytes> = (0..3).map(|_| pool.freeze(Vec::with_capacity(1000))).collect();
        drop(files);
        assert_eq!(pool.kept(), 3);
        drop(pool.freeze(Vec::with_capacity(1000)));
        assert_eq!(pool.kept(), 3, "a fourth would exceed 3000 bytes");
        drop(pool.freeze(Vec::with_capacity(5000)));
        assert_eq!(pool.kept(), 3);
    }
}
