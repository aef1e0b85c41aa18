//! The `file://` backend: a directory on a local or mounted disk.
//!
//! Every write goes to a hidden temporary file in the target directory, is fsynced, renamed into place,
//! and the directory is fsynced: a reader or a crash sees the old object or the new one, never a part.
//! Data files ([`LocalStore::put`]) are written with `O_DIRECT`, sparing the CPU the page-cache copy of
//! files written once; where the file system refuses it, they are written buffered (see [`direct`]).
//! Conditional writes hold an exclusive `flock` on a hidden lock file next to the object, which the
//! kernel releases if the holder dies, so a killed consumer never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ObjectVersion, StoreError, Versioned};
use direct::DirectWriter;

mod direct;

/// Where data given to [`LocalStore::put`] should start in memory: from a multiple of this address on, its
/// whole blocks are written with `O_DIRECT` in place instead of through a staging copy.
pub const DIRECT_IO_ALIGN: usize = direct::BLOCK;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    direct: Arc<DirectWriter>,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            direct: Arc::new(DirectWriter::new(true)),
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
        blocking(move || {
            write_atomic(&path, |tmp| direct.write_new(tmp, &data))
                .map_err(|source| StoreError::Io { path, source })
        })
        .await
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
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name(path)?,
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        write(&tmp)?.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
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
