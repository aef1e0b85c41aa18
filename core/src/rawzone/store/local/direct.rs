//! Data files written with `O_DIRECT`: the bytes go to the disk without a copy into the page cache, which
//! a profile of the consumer showed costing ~17% of its CPU — straight from the caller's memory when it
//! starts at a block boundary, else through an aligned staging buffer.
//!
//! `O_DIRECT` needs the memory, the file offset and the length of every write aligned to the device's
//! logical block size; [`BLOCK`] (4096) covers every common device. The last partial block is padded
//! with zeros and the file is then cut back to its real length, so the result is byte-identical to a
//! buffered write. A file system that refuses `O_DIRECT` (`EINVAL`) gets a buffered write, and the
//! store remembers the refusal so that it does not try again on every file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;

/// The alignment of memory, offsets and lengths: a multiple of every common logical block size.
pub(super) const BLOCK: usize = 4096;
/// How much one write moves; also the size of a staging buffer.
const STAGING: usize = 1 << 20;
/// How much one write moves straight from aligned data.
const IN_PLACE_WRITE: usize = 8 << 20;
/// Staging buffers kept between writes; more concurrent writes allocate and drop their own.
const IDLE_BUFFERS: usize = 2;

/// The direct-write state of one store, shared by its clones.
#[derive(Debug)]
pub(super) struct DirectWriter {
    enabled: bool,
    refused: AtomicBool,
    idle: Mutex<Vec<AlignedBuf>>,
}

impl DirectWriter {
    /// `enabled: false` always writes through the page cache (for comparisons).
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            refused: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Whether the file system refused `O_DIRECT` once, so that writes go through the page cache now.
    pub(super) fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Creates the new file `tmp` holding `data`, not yet synced.
    pub(super) fn write_new(&self, tmp: &Path, data: &[u8]) -> io::Result<File> {
        self.direct_or_buffered(tmp, data, |staging| write_direct(tmp, data, staging))
    }

    /// Tries `direct` unless refused before; on a refusal or a short write, replaces whatever it left
    /// with a buffered write.
    fn direct_or_buffered(
        &self,
        tmp: &Path,
        data: &[u8],
        direct: impl FnOnce(&mut [u8]) -> io::Result<File>,
    ) -> io::Result<File> {
        if !self.enabled || self.refused() {
            return write_buffered(tmp, data);
        }
        let mut staging = match self.take_staging() {
            Ok(staging) => staging,
            Err(e) => return self.fall_back(e, tmp, data),
        };
        let written = direct(staging.as_mut_slice());
        self.give_back(staging);
        match written {
            Ok(file) => Ok(file),
            Err(e) => self.fall_back(e, tmp, data),
        }
    }

    fn fall_back(&self, error: io::Error, tmp: &Path, data: &[u8]) -> io::Result<File> {
        let refusal = error.raw_os_error() == Some(libc::EINVAL);
        if !refusal && error.kind() != io::ErrorKind::WriteZero {
            return Err(error);
        }
        if refusal {
            self.refused.store(true, Ordering::Relaxed);
        }
        remove_refused(tmp)?;
        write_buffered(tmp, data)
    }

    fn take_staging(&self) -> io::Result<AlignedBuf> {
        let reused = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        reused.map_or_else(AlignedBuf::new, Ok)
    }

    fn give_back(&self, staging: AlignedBuf) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_BUFFERS {
            idle.push(staging);
        }
    }
}

pub(super) fn write_buffered(tmp: &Path, data: &[u8]) -> io::Result<File> {
    let mut file = File::create_new(tmp)?;
    file.write_all(data)?;
    Ok(file)
}

/// Writes `data` into the new file `tmp` opened with `O_DIRECT`: the whole blocks straight from `data`
/// when it starts at a block boundary (no copy), the rest — or everything, if it does not — copied
/// chunk by chunk through `staging`.
fn write_direct(tmp: &Path, data: &[u8], staging: &mut [u8]) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(tmp)?;
    let (aligned, rest) = data.split_at(in_place(data));
    for chunk in aligned.chunks(IN_PLACE_WRITE) {
        write_whole(&mut file, chunk)?;
    }
    for chunk in rest.chunks(staging.len()) {
        write_whole(&mut file, padded_copy(staging, chunk))?;
    }
    if !data.len().is_multiple_of(BLOCK) {
        file.set_len(data.len() as u64)?;
    }
    Ok(file)
}

/// How many leading bytes of `data` are whole blocks that `O_DIRECT` can write in place: all of its whole
/// blocks when it starts at a block boundary, none otherwise.
fn in_place(data: &[u8]) -> usize {
    if data.as_ptr().align_offset(BLOCK) == 0 {
        data.len() - data.len() % BLOCK
    } else {
        0
    }
}

/// `chunk` copied to the start of `staging` and padded with zeros to whole blocks.
fn padded_copy<'s>(staging: &'s mut [u8], chunk: &[u8]) -> &'s [u8] {
    let padded = chunk.len().next_multiple_of(BLOCK);
    staging[..chunk.len()].copy_from_slice(chunk);
    staging[chunk.len()..padded].fill(0);
    &staging[..padded]
}

/// Removes what a refused `O_DIRECT` open or write left at `tmp`: some file systems create the file
/// before refusing the flag.
fn remove_refused(tmp: &Path) -> io::Result<()> {
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// One write of whole blocks. A short write would leave the next offset unaligned: the caller gives the
/// file to the buffered path.
fn write_whole(file: &mut File, blocks: &[u8]) -> io::Result<()> {
    if file.write(blocks)? != blocks.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short O_DIRECT write"));
    }
    Ok(())
}

/// A new file written in pieces as they are produced ([`super::StreamedFile`]): with `O_DIRECT` while
/// every piece is whole blocks at a block boundary in memory, through the page cache from the first
/// piece that is not or from a refusal on (the flag is turned off on the open file, so what was written
/// stays and nothing is written twice).
#[derive(Debug)]
pub(super) struct PieceWriter {
    file: File,
    direct: bool,
    len: u64,
}

impl PieceWriter {
    /// Creates `tmp`, with `O_DIRECT` unless `writer` is disabled or its file system refused it before.
    pub(super) fn create(writer: &DirectWriter, tmp: &Path) -> io::Result<Self> {
        if writer.enabled && !writer.refused() {
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_DIRECT)
                .open(tmp);
            match opened {
                Ok(file) => {
                    return Ok(Self {
                        file,
                        direct: true,
                        len: 0,
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    writer.refused.store(true, Ordering::Relaxed);
                    remove_refused(tmp)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            file: File::create_new(tmp)?,
            direct: false,
            len: 0,
        })
    }

    /// Whether the bytes still go to the disk directly.
    pub(super) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Appends `piece`.
    pub(super) fn write(&mut self, writer: &DirectWriter, piece: &[u8]) -> io::Result<()> {
        let whole_blocks = piece.as_ptr().align_offset(BLOCK) == 0 && piece.len().is_multiple_of(BLOCK);
        if self.direct && whole_blocks {
            match self.file.write(piece) {
                Ok(n) if n == piece.len() => {
                    self.len += n as u64;
                    return Ok(());
                }
                // A short write leaves the offset unaligned: the rest goes through the page cache.
                Ok(n) => return self.write_buffered(&piece[n..], n),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    writer.refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        self.write_buffered(piece, 0)
    }

    /// Appends the last piece, of any length, and gives the file back to be synced. With `O_DIRECT`, what
    /// is not whole blocks in place is copied through `writer`'s staging buffer, the last block padded
    /// with zeros and the file cut back to its real length, as [`DirectWriter::write_new`] does.
    pub(super) fn finish(mut self, writer: &DirectWriter, tail: &[u8]) -> io::Result<File> {
        let (aligned, rest) = tail.split_at(in_place(tail));
        self.write(writer, aligned)?;
        if !self.direct || rest.is_empty() {
            self.write(writer, rest)?;
            return Ok(self.file);
        }
        let mut staging = writer.take_staging()?;
        let mut padding = 0;
        let written = rest.chunks(STAGING).try_for_each(|chunk| {
            let padded = padded_copy(staging.as_mut_slice(), chunk);
            padding = padded.len() - chunk.len();
            self.write(writer, padded)
        });
        writer.give_back(staging);
        written?;
        if padding > 0 {
            self.len -= padding as u64;
            self.file.set_len(self.len)?;
        }
        Ok(self.file)
    }

    /// Appends `rest` through the page cache; `already` bytes of the piece went directly.
    fn write_buffered(&mut self, rest: &[u8], already: usize) -> io::Result<()> {
        if self.direct {
            let flags = OFlag::from_bits_retain(fcntl(&self.file, FcntlArg::F_GETFL)?);
            fcntl(&self.file, FcntlArg::F_SETFL(flags - OFlag::O_DIRECT))?;
            self.direct = false;
        }
        self.file.write_all(rest)?;
        self.len += (already + rest.len()) as u64;
        Ok(())
    }
}

/// A zeroed buffer of [`STAGING`] bytes starting at a [`BLOCK`] boundary. The workspace forbids
/// `unsafe`, so instead of an aligned allocation it over-allocates one block and starts at the first
/// aligned address inside; the `Vec` frees it on drop.
#[derive(Debug)]
struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
}

impl AlignedBuf {
    fn new() -> io::Result<Self> {
        let storage = vec![0u8; STAGING + BLOCK];
        let start = storage.as_ptr().align_offset(BLOCK);
        // `align_offset` may in principle give up; that is a refusal like the kernel's.
        if start >= BLOCK {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(Self { storage, start })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + STAGING]
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("streamlake-direct-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn staging_buffers_are_aligned_and_reused() {
        let writer = DirectWriter::new(true);
        let mut staging = writer.take_staging().expect("staging");
        let slice = staging.as_mut_slice();
        assert_eq!((slice.as_ptr() as usize % BLOCK, slice.len()), (0, STAGING));
        let address = slice.as_ptr();
        writer.give_back(staging);
        let mut again = writer.take_staging().expect("staging");
        assert_eq!(again.as_mut_slice().as_ptr(), address, "an idle buffer is reused");
    }

    #[test]
    fn a_refusal_is_remembered_and_the_file_written_buffered() {
        let dir = temp_dir();
        let writer = DirectWriter::new(true);
        let data = vec![7u8; 5000];
        let tmp = dir.join("refused");
        // Like a file system that creates the file, then refuses the flag.
        let file = writer
            .direct_or_buffered(&tmp, &data, |_| {
                File::create_new(&tmp)?.write_all(b"partial")?;
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            })
            .expect("buffered fallback");
        drop(file);
        assert!(writer.refused(), "EINVAL means the file system refuses O_DIRECT");
        assert_eq!(fs::read(&tmp).expect("read"), data);

        let attempted = Cell::new(false);
        let next = dir.join("next");
        writer
            .direct_or_buffered(&next, &data, |_| {
                attempted.set(true);
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            })
            .expect("buffered write");
        assert!(!attempted.get(), "a refused store does not try again");
        assert_eq!(fs::read(&next).expect("read"), data);
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn a_short_write_falls_back_without_giving_up_direct_io() {
        let dir = temp_dir();
        let writer = DirectWriter::new(true);
        let tmp = dir.join("short");
        writer
            .direct_or_buffered(&tmp, b"abc", |_| {
                File::create_new(&tmp)?;
                Err(io::Error::new(io::ErrorKind::WriteZero, "short O_DIRECT write"))
            })
            .expect("buffered fallback");
        assert!(!writer.refused());
        assert_eq!(fs::read(&tmp).expect("read"), b"abc");
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn other_errors_are_not_hidden_by_the_fallback() {
        let dir = temp_dir();
        let writer = DirectWriter::new(true);
        let err = writer
            .direct_or_buffered(&dir.join("x"), b"abc", |_| {
                Err(io::Error::from(io::ErrorKind::PermissionDenied))
            })
            .expect_err("a permission error is not a refusal");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(!writer.refused());
        assert!(!dir.join("x").exists());
        fs::remove_dir_all(dir).expect("cleanup");
    }
}
