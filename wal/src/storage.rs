//! The storage seam: the few file operations the log needs, on one directory. The log is
//! written against this trait so tests can crash it and make it fail:
//!
//! - [`FileStorage`]: real files; `sync` is `fdatasync`, directory changes are followed by
//!   an fsync of the directory; `preallocate` writes zeros ahead of the end, so that
//!   appends overwrite reserved space and an fdatasync need not write the inode too.
//! - [`CrashStorage`]: in memory, with a "written" and a "durable" image of every file and
//!   of the directory; [`CrashStorage::crash`] keeps only what was made durable, optionally
//!   with a torn piece of what was not. Its `preallocate` reserves zeros as the file
//!   storage does, so crash tests see appends over reserved space too.
//! - [`FaultStorage`]: wraps another storage and fails its Nth operation with EIO, ENOSPC
//!   or a short write, once or from then on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File operations on one directory. Names are plain file names in it.
pub trait Storage: Send {
    /// The directory (for messages).
    fn dir(&self) -> &Path;
    /// File names in the directory, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
    /// A whole file.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Creates (or empties) a file.
    fn create(&mut self, name: &str) -> io::Result<()>;
    /// Appends bytes with one write, at the end of what was appended so far (over any
    /// padding [`Storage::preallocate`] wrote).
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Pads the file up to `len` with zeros past what was appended, so that later appends
    /// within the padding do not change the file's size. A storage may do nothing (the
    /// default): padding is an optimization, never content.
    fn preallocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let _ = (name, len);
        Ok(())
    }
    /// Makes a file's contents durable (fdatasync).
    fn sync(&mut self, name: &str) -> io::Result<()>;
    /// Cuts a file to `len` bytes.
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()>;
    /// Renames a file (atomically replacing `to`).
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    fn sync_dir(&mut self) -> io::Result<()>;
    /// Lets go of any handle kept open on `name` (which stays on disk); no I/O.
    fn close(&mut self, _name: &str) {}
}

/// Real files in a directory.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    open: HashMap<String, OpenFile>,
}

/// A file this storage writes: where the next append goes, and how long the file is
/// (longer than `end` by the zeros `preallocate` wrote).
#[derive(Debug)]
struct OpenFile {
    file: File,
    end: u64,
    len: u64,
}

/// Zeros written per call while preallocating.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl FileStorage {
    /// Storage on `dir`, created if missing.
    pub fn new(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(FileStorage {
            dir: dir.to_path_buf(),
            open: HashMap::new(),
        })
    }

    /// The open file `name`; a file opened for the first time is appended to at its end.
    fn file(&mut self, name: &str) -> io::Result<&mut OpenFile> {
        if !self.open.contains_key(name) {
            let file = OpenOptions::new().write(true).open(self.dir.join(name))?;
            let len = file.metadata()?.len();
            self.open.insert(
                name.to_string(),
                OpenFile {
                    file,
                    end: len,
                    len,
                },
            );
        }
        Ok(self.open.get_mut(name).expect("just inserted"))
    }
}

impl Storage for FileStorage {
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }
    fn create(&mut self, name: &str) -> io::Result<()> {
        self.open.remove(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(self.dir.join(name))?;
        drop(file);
        Ok(())
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let f = self.file(name)?;
        // On a failure the end is left where it was: the caller cuts the file back to it.
        f.file.write_all_at(bytes, f.end)?;
        f.end += bytes.len() as u64;
        f.len = f.len.max(f.end);
        Ok(())
    }
    fn preallocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let f = self.file(name)?;
        while f.len < len {
            let n = (len - f.len).min(ZEROS.len() as u64) as usize;
            f.file.write_all_at(&ZEROS[..n], f.len)?;
            f.len += n as u64;
        }
        Ok(())
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.file(name)?.file.sync_data()
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(self.dir.join(name))?;
        file.set_len(len)?;
        file.sync_all()?;
        if let Some(f) = self.open.get_mut(name) {
            f.end = len;
            f.len = len;
        }
        Ok(())
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.open.remove(from);
        self.open.remove(to);
        fs::rename(self.dir.join(from), self.dir.join(to))
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.open.remove(name);
        fs::remove_file(self.dir.join(name))
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
    fn close(&mut self, name: &str) {
        self.open.remove(name);
    }
}

/// How a crash treats bytes that were written but not made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TearMode {
    /// They vanish.
    DropUnsynced,
    /// A prefix of them survives (as if the crash cut a write), length from the seed.
    KeepPrefix(u64),
    /// A prefix survives and its last byte is garbage (a torn sector).
    GarbleTail(u64),
}

#[derive(Debug, Clone, Default)]
struct Image {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// Where the next append goes: the end of what was appended (zeros that
    /// `preallocate` reserved lie past it).
    end: usize,
}

#[derive(Debug, Default)]
struct CrashState {
    files: BTreeMap<String, Image>,
    /// Names whose creation, rename or removal was made durable by `sync_dir`.
    durable_names: BTreeSet<String>,
    /// Files removed or renamed away (or replaced by a rename) since the last `sync_dir`,
    /// as they were: a crash brings back the ones whose names were durable.
    unlinked: BTreeMap<String, Image>,
    ops: u64,
}

/// In-memory storage that can crash: only what was synced survives (see [`TearMode`]).
/// Clones share the same files, so a test keeps one to crash and reopen.
#[derive(Debug, Clone)]
pub struct CrashStorage {
    dir: PathBuf,
    state: Arc<parking_lot::Mutex<CrashState>>,
}

impl Default for CrashStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl CrashStorage {
    /// An empty directory.
    pub fn new() -> Self {
        CrashStorage {
            dir: PathBuf::from("<crash-storage>"),
            state: Arc::default(),
        }
    }

    /// Storage operations done so far (for "crash after operation k" loops).
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Loses everything not made durable. A file whose directory entry was never synced
    /// disappears; a synced file keeps its durable bytes plus, per `tear`, a piece of the
    /// unsynced ones.
    pub fn crash(&self, tear: TearMode) {
        let mut state = self.state.lock();
        let mut survivors = BTreeMap::new();
        let durable_names = std::mem::take(&mut state.durable_names);
        let unlinked = std::mem::take(&mut state.unlinked);
        for name in &durable_names {
            // A name whose removal or rename was not made durable still names its old file.
            let image = match unlinked.get(name) {
                Some(image) => image.clone(),
                None => state.files.get(name).cloned().unwrap_or_default(),
            };
            let mut bytes = image.durable.clone();
            // The unsynced writes start at the first byte where the written image differs
            // from the durable one (appends past its end, or over reserved zeros); a torn
            // crash keeps a prefix of them.
            let start = image
                .written
                .iter()
                .zip(&image.durable)
                .position(|(w, d)| w != d)
                .unwrap_or(image.written.len().min(image.durable.len()));
            let extra = image.written.get(start..).unwrap_or(&[]);
            let keep = match tear {
                _ if extra.is_empty() => 0,
                TearMode::DropUnsynced => 0,
                TearMode::KeepPrefix(seed) => (seed as usize) % (extra.len() + 1),
                TearMode::GarbleTail(seed) => 1 + (seed as usize) % extra.len(),
            };
            if keep > 0 {
                if bytes.len() < start + keep {
                    bytes.resize(start + keep, 0);
                }
                bytes[start..start + keep].copy_from_slice(&extra[..keep]);
                if matches!(tear, TearMode::GarbleTail(_)) {
                    bytes[start + keep - 1] ^= 0x5A;
                }
            }
            survivors.insert(
                name.clone(),
                Image {
                    written: bytes.clone(),
                    end: bytes.len(),
                    durable: bytes,
                },
            );
        }
        state.files = survivors;
        state.durable_names = state.files.keys().cloned().collect();
    }

    /// The current bytes of a file (as written, durable or not).
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.state.lock().files.get(name).map(|i| i.written.clone())
    }

    /// Replaces a file's bytes, durably (to inject damage).
    pub fn overwrite(&self, name: &str, bytes: Vec<u8>) {
        let mut state = self.state.lock();
        state.files.insert(
            name.to_string(),
            Image {
                written: bytes.clone(),
                end: bytes.len(),
                durable: bytes,
            },
        );
        state.durable_names.insert(name.to_string());
    }

    fn with<T>(&self, f: impl FnOnce(&mut CrashState) -> io::Result<T>) -> io::Result<T> {
        let mut state = self.state.lock();
        state.ops += 1;
        f(&mut state)
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

impl Storage for CrashStorage {
    fn dir(&self) -> &Path {
        &self.dir
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.with(|s| Ok(s.files.keys().cloned().collect()))
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.with(|s| {
            s.files
                .get(name)
                .map(|i| i.written.clone())
                .ok_or_else(|| not_found(name))
        })
    }
    fn create(&mut self, name: &str) -> io::Result<()> {
        self.with(|s| {
            s.files.insert(name.to_string(), Image::default());
            Ok(())
        })
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.with(|s| {
            let image = s.files.get_mut(name).ok_or_else(|| not_found(name))?;
            let end = image.end + bytes.len();
            if image.written.len() < end {
                image.written.resize(end, 0);
            }
            image.written[image.end..end].copy_from_slice(bytes);
            image.end = end;
            Ok(())
        })
    }
    fn preallocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.with(|s| {
            let image = s.files.get_mut(name).ok_or_else(|| not_found(name))?;
            if image.written.len() < len as usize {
                image.written.resize(len as usize, 0);
            }
            Ok(())
        })
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.with(|s| {
            let image = s.files.get_mut(name).ok_or_else(|| not_found(name))?;
            image.durable = image.written.clone();
            Ok(())
        })
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.with(|s| {
            let image = s.files.get_mut(name).ok_or_else(|| not_found(name))?;
            image.written.truncate(len as usize);
            image.end = image.end.min(image.written.len());
            image.durable = image.written.clone();
            Ok(())
        })
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.with(|s| {
            let image = s.files.remove(from).ok_or_else(|| not_found(from))?;
            s.unlinked
                .entry(from.to_string())
                .or_insert_with(|| image.clone());
            if let Some(replaced) = s.files.get(to).cloned() {
                s.unlinked.entry(to.to_string()).or_insert(replaced);
            }
            s.files.insert(to.to_string(), image);
            Ok(())
        })
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.with(|s| {
            let image = s.files.remove(name).ok_or_else(|| not_found(name))?;
            s.unlinked.entry(name.to_string()).or_insert(image);
            Ok(())
        })
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        self.with(|s| {
            s.durable_names = s.files.keys().cloned().collect();
            s.unlinked.clear();
            Ok(())
        })
    }
}

/// The error a [`FaultStorage`] injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// EIO.
    Eio,
    /// ENOSPC.
    NoSpace,
    /// A write that stores only half its bytes, then reports EIO.
    ShortWrite,
}

/// Wraps a storage and fails its `fail_at`-th mutating operation (counting from 1), once
/// or (if `persistent`) that one and every later one.
#[derive(Debug)]
pub struct FaultStorage<S> {
    inner: S,
    fail_at: u64,
    kind: FaultKind,
    persistent: bool,
    count: u64,
    injected: u64,
    /// Faults injected into `preallocate`, which the log absorbs (the zeros are optional).
    injected_preallocate: u64,
}

impl<S: Storage> FaultStorage<S> {
    /// Fails operation `fail_at` with `kind`.
    pub fn new(inner: S, fail_at: u64, kind: FaultKind, persistent: bool) -> Self {
        FaultStorage {
            inner,
            fail_at,
            kind,
            persistent,
            count: 0,
            injected: 0,
            injected_preallocate: 0,
        }
    }

    /// Of [`FaultStorage::injected`], those that failed a `preallocate`.
    pub fn injected_preallocate(&self) -> u64 {
        self.injected_preallocate
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected
    }

    /// Counts a mutating operation; `Some(kind)` if it must fail.
    fn fault(&mut self) -> Option<FaultKind> {
        self.count += 1;
        let hit = self.count == self.fail_at || (self.persistent && self.count > self.fail_at);
        hit.then(|| {
            self.injected += 1;
            self.kind
        })
    }
}

fn fault_error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Eio | FaultKind::ShortWrite => io::Error::from_raw_os_error(5),
        FaultKind::NoSpace => io::Error::from_raw_os_error(28),
    }
}

impl<S: Storage> Storage for FaultStorage<S> {
    fn dir(&self) -> &Path {
        self.inner.dir()
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn create(&mut self, name: &str) -> io::Result<()> {
        match self.fault() {
            Some(kind) => Err(fault_error(kind)),
            None => self.inner.create(name),
        }
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        match self.fault() {
            Some(FaultKind::ShortWrite) => {
                self.inner.append(name, &bytes[..bytes.len() / 2])?;
                Err(fault_error(FaultKind::ShortWrite))
            }
            Some(kind) => Err(fault_error(kind)),
            None => self.inner.append(name, bytes),
        }
    }
    fn preallocate(&mut self, name: &str, len: u64) -> io::Result<()> {
        match self.fault() {
            Some(kind) => {
                self.injected_preallocate += 1;
                Err(fault_error(kind))
            }
            None => self.inner.preallocate(name, len),
        }
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        match self.fault() {
            Some(kind) => Err(fault_error(kind)),
            None => self.inner.sync(name),
        }
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        match self.fault() {
            Some(kind) => Err(fault_error(kind)),
            None => self.inner.truncate(name, len),
        }
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        match self.fault() {
            Some(kind) => Err(fault_error(kind)),
            None => self.inner.rename(from, to),
        }
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        match self.fault() {
            Some(kind) => Err(fault_error(kind)),
            None => self.inner.remove(name),
        }
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        match self.fault() {
            Some(kind) => Err(fault_error(kind)),
            None => self.inner.sync_dir(),
        }
    }
    fn close(&mut self, name: &str) {
        self.inner.close(name);
    }
}
