//! The `file://` backend: a directory on a local or mounted disk.
//!
//! Every write goes to a hidden temporary file in the target directory, is fsynced, renamed into place,
//! and the directory is fsynced: a reader or a crash sees the old object or the new one, never a part.
//! Data files ([`LocalStore::put`]) are written with `O_DIRECT`, sparing the CPU the page-cache copy of
//! files written once; where the file system refuses it, they are written buffered (see the module
//! `direct`).
//! A data file too large to hold whole can be streamed instead ([`LocalStore::create_streamed`]): written
//! piece by piece as it is produced, then named, synced and renamed the same way. Temporary files left
//! by a writer that died are removed, an hour later, the first time the process writes a data file to
//! their directory.
//! Conditional writes hold an exclusive `flock` on a hidden lock file next to the object, which the
//! kernel releases if the holder dies, so a killed consumer never leaves a stale lock behind.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ObjectVersion, StoreError, Versioned};
use direct::{DirectWriter, PieceWriter};

mod direct;

/// Where data given to [`LocalStore::put`] should start in memory: from a multiple of this address on, its
/// whole blocks are written with `O_DIRECT` in place instead of through a staging copy.
pub const DIRECT_IO_ALIGN: usize = direct::BLOCK;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    direct: Arc<DirectWriter>,
    /// Directories this process has already swept of abandoned temporary files.
    swept: Arc<Mutex<HashSet<PathBuf>>>,
}

/// A temporary file this old was left by a writer that died: a write takes seconds at most.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            direct: Arc::new(DirectWriter::new(true)),
            swept: Arc::default(),
        }
    }

    /// `false` writes data files through the page cache, as `put_if` does (for comparisons).
    pub fn with_direct_io(self, enabled: bool) -> Self {
        Self {
            direct: Arc::new(DirectWriter::new(enabled)),
            ..self
        }
    }

    /// Whether the file system refused `O_DIRECT`, so that data files are written buffered.
    pub fn direct_io_refused(&self) -> bool {
        self.direct.refused()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a key; keys are relative and may not climb out of the root.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let relative = Path::new(key);
        if key.is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(StoreError::Io {
                path: relative.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "keys must be relative paths without `..`",
                ),
            });
        }
        Ok(self.root.join(relative))
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let direct = Arc::clone(&self.direct);
        let swept = Arc::clone(&self.swept);
        blocking(move || {
            if let Some(dir) = path.parent() {
                sweep_once(&swept, dir);
            }
            write_atomic(&path, |tmp| direct.write_new(tmp, &data))
                .map_err(|source| StoreError::Io { path, source })
        })
        .await
    }

    /// Starts a data file in the directory `dir_key`, to be written piece by piece as it is produced and
    /// named only when it is finished (its name may depend on its bytes). Blocking: call it, and the
    /// file's methods, off the async runtime.
    pub fn create_streamed(&self, dir_key: &str) -> Result<StreamedFile, StoreError> {
        let dir = self.path_of(dir_key)?;
        let tmp = temporary_path(&dir, "streamed");
        let io_err = |source| StoreError::Io {
            path: tmp.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io_err)?;
        sweep_once(&self.swept, &dir);
        let pieces = PieceWriter::create(&self.direct, &tmp).map_err(io_err)?;
        Ok(StreamedFile {
            direct: Arc::clone(&self.direct),
            pieces: Some(pieces),
            dir,
            tmp,
            placed: false,
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let path = self.path_of(key)?;
        blocking(move || match read_optional(&path) {
            Ok(data) => Ok(data.map(|data| Versioned {
                version: version_of(&data),
                data: Bytes::from(data),
            })),
            Err(source) => Err(StoreError::Io { path, source }),
        })
        .await
    }

    pub async fn put_if(
        &self,
        key: &str,
        data: Bytes,
        expected: Option<&ObjectVersion>,
    ) -> Result<ObjectVersion, StoreError> {
        let path = self.path_of(key)?;
        let expected = expected.cloned();
        let key = key.to_owned();
        blocking(move || {
            let io_err = |source| StoreError::Io {
                path: path.clone(),
                source,
            };
            let _lock = lock_beside(&path).map_err(io_err)?;
            let current = read_optional(&path).map_err(io_err)?.map(|d| version_of(&d));
            if current != expected {
                return Err(StoreError::PreconditionFailed { key });
            }
            write_atomic(&path, |tmp| direct::write_buffered(tmp, &data)).map_err(io_err)?;
            Ok(version_of(&data))
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        })
        .await
    }
}

/// A data file being written piece by piece to a hidden temporary file beside its final place
/// ([`LocalStore::create_streamed`]). Pieces of whole 4096-byte blocks that start at a block boundary in
/// memory ([`DIRECT_IO_ALIGN`]) go to the disk with `O_DIRECT`, straight from there. [`StreamedFile::finish`]
/// names the file, syncs it and renames it into place, atomically as [`LocalStore::put`] does; a file
/// dropped unfinished removes its temporary file, so a failed landing leaves nothing a reader lists.
#[derive(Debug)]
pub struct StreamedFile {
    direct: Arc<DirectWriter>,
    /// `None` once finished.
    pieces: Option<PieceWriter>,
    dir: PathBuf,
    tmp: PathBuf,
    /// Renamed into place: no temporary file left to remove.
    placed: bool,
}

impl StreamedFile {
    /// Appends `piece`; written directly when it is whole blocks at a block boundary, else (and from then
    /// on) through the page cache.
    pub fn write(&mut self, piece: &[u8]) -> Result<(), StoreError> {
        let io_err = |source| StoreError::Io {
            path: self.tmp.clone(),
            source,
        };
        match self.pieces.as_mut() {
            Some(pieces) => pieces.write(&self.direct, piece).map_err(io_err),
            None => Err(io_err(finished())),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.pieces.as_ref().map_or(0, PieceWriter::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pieces still go to the disk with `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.pieces.as_ref().is_some_and(PieceWriter::is_direct)
    }

    /// Appends `tail` (any length) and puts the file in place as `name` in its directory: synced,
    /// renamed over any file of that name, and the directory synced.
    pub fn finish(mut self, tail: &[u8], name: &str) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        if name.is_empty()
            || Path::new(name)
                .components()
                .ne([Component::Normal(name.as_ref())])
        {
            return Err(StoreError::Io {
                path,
                source: io::Error::new(io::ErrorKind::InvalidInput, "a file name, without `/`"),
            });
        }
        let pieces = self.pieces.take().ok_or_else(|| StoreError::Io {
            path: self.tmp.clone(),
            source: finished(),
        })?;
        let placed = pieces
            .finish(&self.direct, tail)
            .and_then(|file| place(file, &self.tmp, &path, &self.dir, &mut self.placed));
        placed.map_err(|source| StoreError::Io { path, source })
    }
}

impl Drop for StreamedFile {
    fn drop(&mut self) {
        // Unfinished, or failed before the rename: the temporary file must not stay behind.
        if !self.placed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn finished() -> io::Error {
    io::Error::other("the streamed file is already finished")
}

/// The first time this process writes a data file to `dir` (`swept` holds the directories it did): removes
/// the temporary files there ([`temporary_path`]) that a writer which died mid-write left behind (readers
/// skip them, but they hold disk space), once they are [`ABANDONED_AFTER`] old. Best effort: a file it
/// cannot remove stays.
fn sweep_once(swept: &Mutex<HashSet<PathBuf>>, dir: &Path) {
    if !swept
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(dir.to_owned())
    {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let temporary = name
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.contains(TEMPORARY_MARK));
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if temporary && age.is_some_and(|age| age >= ABANDONED_AFTER) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A content digest stands in for a generation: equal bytes are the same version for a merge.
fn version_of(data: &[u8]) -> ObjectVersion {
    let digest = Sha256::digest(data);
    ObjectVersion(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

fn file_name(path: &Path) -> io::Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no UTF-8 file name"))
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory"))
}

/// Has `write` create a temporary file beside `path`, then syncs it and renames it into place.
fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> io::Result<File>) -> io::Result<()> {
    let dir = parent(path)?;
    fs::create_dir_all(dir)?;
    let tmp = temporary_path(dir, file_name(path)?);
    let mut placed = false;
    let written = write(&tmp).and_then(|file| place(file, &tmp, path, dir, &mut placed));
    if !placed {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// What marks a temporary file's name ([`temporary_path`]), for [`sweep_once`].
const TEMPORARY_MARK: &str = ".tmp-";

/// A new hidden temporary file in `dir` for `stem`: readers skip names starting with `.`.
fn temporary_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(
        ".{stem}{TEMPORARY_MARK}{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// Syncs `file`, written at `tmp`, renames it to `path` (`placed` is set from then on: `tmp` is gone) and
/// syncs the directory `dir`, so a crash sees the old object or the new one, never a part.
fn place(file: File, tmp: &Path, path: &Path, dir: &Path, placed: &mut bool) -> io::Result<()> {
    file.sync_all()?;
    fs::rename(tmp, path)?;
    *placed = true;
    File::open(dir)?.sync_all()
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes the exclusive lock of `path`; it is released when the returned file is dropped.
fn lock_beside(path: &Path) -> io::Result<File> {
    let dir = parent(path)?;
    fs::create_dir_all(dir)?;
    let lock_path = dir.join(format!(".{}.lock", file_name(path)?));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)?;
    file.lock()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;

    fn temp_root() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "streamlake-local-store-{}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[tokio::test]
    async fn put_get_and_delete_round_trip() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        store
            .put("a/b/file.jsonl", Bytes::from_static(b"one\n"))
            .await
            .expect("put");
        let got = store.get("a/b/file.jsonl").await.expect("get").expect("exists");
        assert_eq!(&got.data[..], b"one\n");
        let leftovers: Vec<_> = fs::read_dir(root.join("a/b")).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file may remain");
        store.delete("a/b/file.jsonl").await.expect("delete");
        store
            .delete("a/b/file.jsonl")
            .await
            .expect("deleting twice is fine");
        assert!(store.get("a/b/file.jsonl").await.expect("get").is_none());
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[tokio::test]
    async fn put_if_is_a_compare_and_swap() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        let v1 = store
            .put_if("m/_metadata.json", Bytes::from_static(b"1"), None)
            .await
            .expect("create");
        let err = store
            .put_if("m/_metadata.json", Bytes::from_static(b"x"), None)
            .await
            .expect_err("exists");
        assert!(matches!(err, StoreError::PreconditionFailed { .. }));
        let v2 = store
            .put_if("m/_metadata.json", Bytes::from_static(b"2"), Some(&v1))
            .await
            .expect("swap");
        let stale = store
            .put_if("m/_metadata.json", Bytes::from_static(b"3"), Some(&v1))
            .await;
        assert!(
            matches!(stale, Err(StoreError::PreconditionFailed { .. })),
            "a stale version must lose"
        );
        let got = store.get("m/_metadata.json").await.expect("get").expect("exists");
        assert_eq!((&got.data[..], got.version), (&b"2"[..], v2));
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[tokio::test]
    async fn concurrent_compare_and_swaps_lose_no_update() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        let key = "m/_metadata.json";
        store
            .put_if(key, Bytes::from_static(b"0"), None)
            .await
            .expect("create");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let current = store.get(key).await.expect("get").expect("exists");
                        let n: u64 = std::str::from_utf8(&current.data)
                            .expect("utf8")
                            .parse()
                            .expect("number");
                        let next = Bytes::from((n + 1).to_string());
                        match store.put_if(key, next, Some(&current.version)).await {
                            Ok(_) => break,
                            Err(StoreError::PreconditionFailed { .. }) => continue,
                            Err(e) => panic!("unexpected error {e}"),
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let last = store.get(key).await.expect("get").expect("exists");
        assert_eq!(&last.data[..], b"80", "every increment must survive");
        fs::remove_dir_all(root).expect("cleanup");
    }

    /// Bytes that show a misplaced chunk or a stray padding zero.
    fn pattern(len: usize) -> Bytes {
        (0..len).map(|i| (i % 251) as u8 + 1).collect::<Vec<u8>>().into()
    }

    const SIZES: [usize; 9] = [
        0,
        1,
        4095,
        4096,
        4097,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        (3 << 20) + 17,
    ];

    /// `data` copied to memory that starts at a block boundary (written in place by `O_DIRECT`).
    fn block_aligned(data: &Bytes) -> Bytes {
        let mut storage = vec![0u8; data.len() + direct::BLOCK];
        let start = storage.as_ptr().align_offset(direct::BLOCK);
        storage[start..start + data.len()].copy_from_slice(data);
        let aligned = Bytes::from(storage).slice(start..start + data.len());
        assert_eq!(aligned.as_ptr().align_offset(direct::BLOCK), 0);
        aligned
    }

    /// Puts every size in `root`, from memory at any address and at a block boundary, and checks the
    /// files hold exactly the bytes, with no temporary left.
    async fn put_every_size(store: &LocalStore, root: &Path) {
        for len in SIZES {
            for (placement, data) in [("any", pattern(len)), ("aligned", block_aligned(&pattern(len)))] {
                let key = format!("d/{len}-{placement}.jsonl");
                store.put(&key, data).await.expect("put");
                let written = fs::read(root.join(&key)).expect("read back");
                assert!(
                    written == pattern(len),
                    "{len} bytes from {placement} memory written differ from the data"
                );
            }
        }
        let leftovers: Vec<_> = fs::read_dir(root.join("d")).expect("dir").collect();
        assert_eq!(leftovers.len(), 2 * SIZES.len(), "no temporary file may remain");
    }

    #[tokio::test]
    async fn direct_writes_are_byte_identical_for_every_size() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        put_every_size(&store, &root).await;
        let probe = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_DIRECT)
            .open(root.join("probe"));
        if probe.is_ok() {
            // Misaligned memory, offsets or lengths would have been refused (EINVAL) and hidden.
            assert!(!store.direct_io_refused(), "this file system takes O_DIRECT");
        }
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[tokio::test]
    async fn buffered_and_tmpfs_writes_are_byte_identical() {
        let root = temp_root();
        put_every_size(&LocalStore::new(root.clone()).with_direct_io(false), &root).await;
        fs::remove_dir_all(root).expect("cleanup");
        // tmpfs refused O_DIRECT before Linux 6.6: the fallback there, the direct path since.
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let root = shm.join(format!(
                "streamlake-local-store-{}",
                uuid::Uuid::new_v4().simple()
            ));
            put_every_size(&LocalStore::new(root.clone()), &root).await;
            fs::remove_dir_all(root).expect("cleanup");
        }
    }

    /// How many entries `dir` holds.
    fn entries(dir: &Path) -> usize {
        fs::read_dir(dir).expect("dir").count()
    }

    /// `data` copied to memory one byte past a block boundary (never written in place by `O_DIRECT`).
    fn misaligned(data: &Bytes) -> Bytes {
        block_aligned(&Bytes::from([&[0u8][..], data].concat())).slice(1..)
    }

    /// `data` from block-aligned memory when `aligned`, else from memory just past a block boundary.
    fn placed(data: &Bytes, aligned: bool) -> Bytes {
        if aligned {
            block_aligned(data)
        } else {
            misaligned(data)
        }
    }

    /// Streams `data` in pieces of `piece` bytes (from block-aligned memory when `aligned`), all but a
    /// last partial block, which goes as the tail.
    fn stream(store: &LocalStore, data: &Bytes, piece: usize, aligned: bool) -> StreamedFile {
        let source = placed(data, aligned);
        let mut file = store.create_streamed("d").expect("create");
        let whole = data.len() / piece * piece;
        let whole = if whole == data.len() {
            whole.saturating_sub(piece)
        } else {
            whole
        };
        for start in (0..whole).step_by(piece) {
            file.write(&source[start..start + piece]).expect("piece");
        }
        assert_eq!(file.len(), whole as u64);
        file
    }

    #[test]
    fn streamed_files_are_byte_identical_and_leave_no_temporary_file() {
        let root = temp_root();
        let stores = [
            LocalStore::new(root.clone()),
            LocalStore::new(root.clone()).with_direct_io(false),
        ];
        for (s, store) in stores.iter().enumerate() {
            for len in SIZES {
                for (piece, aligned) in [(4096, true), (1 << 20, true), (4096, false), (1000, true)] {
                    let data = pattern(len);
                    let name = format!("{s}-{len}-{piece}-{aligned}.jsonl");
                    let file = stream(store, &data, piece, aligned);
                    let direct = file.is_direct();
                    let whole = file.len() as usize;
                    let source = placed(&data, aligned);
                    file.finish(&source[whole..], &name).expect("finish");
                    let written = fs::read(root.join("d").join(&name)).expect("read back");
                    assert!(written == data, "{name}: the file differs from the data");
                    if s == 0 && aligned && piece % 4096 == 0 && whole > 0 {
                        assert!(direct, "{name}: whole aligned blocks go directly");
                    }
                    if whole > 0 && (piece == 1000 || !aligned) {
                        assert!(
                            !direct,
                            "{name}: a piece that is not whole aligned blocks is buffered"
                        );
                    }
                }
            }
        }
        let names: Vec<String> = fs::read_dir(root.join("d"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.')),
            "temporary files left: {names:?}"
        );
        assert_eq!(names.len(), 2 * SIZES.len() * 4);
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn streamed_files_on_tmpfs_are_byte_identical() {
        // tmpfs refused O_DIRECT before Linux 6.6 (at open): the buffered path there, the direct one since.
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let root = shm.join(format!("streamlake-streamed-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalStore::new(root.clone());
        let data = pattern((3 << 20) + 17);
        let file = stream(&store, &data, 1 << 20, true);
        let whole = file.len() as usize;
        file.finish(&placed(&data, true)[whole..], "f.jsonl")
            .expect("finish");
        assert!(fs::read(root.join("d/f.jsonl")).expect("read back") == data);
        assert_eq!(entries(&root.join("d")), 1, "no temporary file");
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn a_streamed_file_dropped_or_misnamed_leaves_nothing() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        let data = block_aligned(&pattern(3 << 20));
        let mut file = store.create_streamed("d").expect("create");
        file.write(&data[..1 << 20]).expect("piece");
        drop(file);
        let mut file = store.create_streamed("d").expect("create");
        file.write(&data[..1 << 20]).expect("piece");
        let err = file
            .finish(&data[1 << 20..], "../escape")
            .expect_err("a name with a path");
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        assert_eq!(entries(&root.join("d")), 0, "nothing left behind");
        assert!(
            store.create_streamed("../x").is_err(),
            "the directory may not escape the root"
        );
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn abandoned_temporary_files_are_swept_the_first_time_a_directory_is_written() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        let dir = root.join("d");
        fs::create_dir_all(&dir).expect("dir");
        let old = std::time::SystemTime::now() - ABANDONED_AFTER - Duration::from_secs(60);
        for name in [".a.jsonl.tmp-1", ".streamed.tmp-2", "kept.jsonl", ".young.tmp-3"] {
            let file = File::create(dir.join(name)).expect("create");
            if name != ".young.tmp-3" {
                file.set_modified(old).expect("age it");
            }
        }
        drop(store.create_streamed("d").expect("create"));
        let mut names: Vec<String> = fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".young.tmp-3", "kept.jsonl"],
            "an hour-old temporary file is abandoned"
        );
        let again = File::create(dir.join(".b.tmp-4")).expect("create");
        again.set_modified(old).expect("age it");
        drop(store.create_streamed("d").expect("create"));
        assert!(
            dir.join(".b.tmp-4").exists(),
            "a directory is swept once per process"
        );
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[tokio::test]
    async fn a_data_file_put_sweeps_its_directory_too() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        fs::create_dir_all(root.join("e")).expect("dir");
        let stale = File::create(root.join("e/.x.jsonl.tmp-9")).expect("create");
        stale
            .set_modified(std::time::SystemTime::now() - ABANDONED_AFTER)
            .expect("age it");
        store
            .put("e/x.jsonl", Bytes::from_static(b"x\n"))
            .await
            .expect("put");
        let names: Vec<_> = fs::read_dir(root.join("e"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["x.jsonl"]);
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn a_streamed_file_replaces_one_of_the_same_name() {
        let root = temp_root();
        let store = LocalStore::new(root.clone());
        for round in 0..2 {
            let data = pattern(5000 + round);
            store
                .create_streamed("d")
                .expect("create")
                .finish(&data, "same.jsonl")
                .expect("finish");
            assert!(fs::read(root.join("d/same.jsonl")).expect("read") == data);
        }
        assert_eq!(entries(&root.join("d")), 1);
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let store = LocalStore::new(temp_root());
        for bad in ["../x", "/etc/passwd", "a/../../x", ""] {
            assert!(
                store.put(bad, Bytes::new()).await.is_err(),
                "{bad} must be refused"
            );
        }
    }
}
