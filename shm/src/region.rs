//! The file-backed shared mapping: creation (dataplane), attachment (control), header fields.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{SystemTime, UNIX_EPOCH};
use std::{fmt, slice};

use memmap2::MmapRaw;

use crate::ring::{Consumer, Producer, RingId, RingView};
use crate::stats::{self, StatsReader, StatsWriter};

/// `b"RVSSHM01"` read as a little-endian u64: the file starts with those eight bytes.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RVSSHM01");
/// Layout version this build writes and reads.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes reserved for the header (the first page).
pub const HEADER_BYTES: usize = 4096;
/// Smallest ring data area accepted.
pub const MIN_RING_BYTES: usize = 256;
/// Largest ring data area accepted.
pub const MAX_RING_BYTES: usize = 1 << 30;
/// Largest number of worker stats blocks.
pub const MAX_WORKERS: u32 = 1024;
/// Largest number of traffic entries per worker block.
pub const MAX_ENTRIES_PER_WORKER: u32 = 1 << 20;

/// Each ring's two indices, each on its own 64-byte cache line, before its data area.
const RING_CTRL_BYTES: usize = 128;
const CONS_INDEX_AT: usize = 64;

/// Sizes of a region, chosen by the dataplane at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Command ring data bytes (power of two, `MIN_RING_BYTES..=MAX_RING_BYTES`).
    pub cmd_ring_bytes: usize,
    /// Reply ring data bytes (power of two, `MIN_RING_BYTES..=MAX_RING_BYTES`).
    pub reply_ring_bytes: usize,
    /// Worker stats blocks (`..=MAX_WORKERS`).
    pub workers: u32,
    /// Traffic entries per worker block (`..=MAX_ENTRIES_PER_WORKER`).
    pub entries_per_worker: u32,
}

impl Default for Params {
    /// 4 MiB rings, 16 workers of 4096 entries (about 12 MiB in all).
    fn default() -> Self {
        Params {
            cmd_ring_bytes: 4 << 20,
            reply_ring_bytes: 4 << 20,
            workers: 16,
            entries_per_worker: 4096,
        }
    }
}

/// Byte offsets of everything in the file, derived from [`Params`] alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    cmd_ring: usize,
    reply_ring: usize,
    stats: usize,
    block_bytes: usize,
    total: usize,
}

impl Layout {
    fn new(p: &Params) -> Result<Layout, String> {
        for (name, bytes) in [
            ("cmd_ring_bytes", p.cmd_ring_bytes),
            ("reply_ring_bytes", p.reply_ring_bytes),
        ] {
            if !bytes.is_power_of_two() || !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&bytes) {
                return Err(format!(
                    "{name} {bytes} is not a power of two in {MIN_RING_BYTES}..={MAX_RING_BYTES}"
                ));
            }
        }
        if p.workers > MAX_WORKERS {
            return Err(format!("workers {} is above {MAX_WORKERS}", p.workers));
        }
        if p.entries_per_worker > MAX_ENTRIES_PER_WORKER {
            return Err(format!(
                "entries_per_worker {} is above {MAX_ENTRIES_PER_WORKER}",
                p.entries_per_worker
            ));
        }
        // Bounded above: no overflow on 64-bit targets.
        let cmd_ring = HEADER_BYTES;
        let reply_ring = cmd_ring + RING_CTRL_BYTES + p.cmd_ring_bytes;
        let stats = reply_ring + RING_CTRL_BYTES + p.reply_ring_bytes;
        let block_bytes = stats::block_words(p.entries_per_worker as usize) * 8;
        let total = (stats + block_bytes * p.workers as usize).next_multiple_of(4096);
        Ok(Layout {
            cmd_ring,
            reply_ring,
            stats,
            block_bytes,
            total,
        })
    }
}

/// The header at offset 0. Every field is an atomic; the control-written fields have their
/// own cache line.
#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    header_bytes: AtomicU32,
    total_bytes: AtomicU64,
    cmd_ring_off: AtomicU64,
    cmd_ring_bytes: AtomicU64,
    reply_ring_off: AtomicU64,
    reply_ring_bytes: AtomicU64,
    stats_off: AtomicU64,
    stats_block_bytes: AtomicU64,
    max_workers: AtomicU32,
    entries_per_worker: AtomicU32,
    boot_id: AtomicU64,
    dataplane_pid: AtomicU32,
    workers: AtomicU32,
    generation: AtomicU64,
    dataplane_heartbeat: AtomicU64,
    _reserved0: [AtomicU64; 2],
    // offset 128: written by rvs-control
    control_pid: AtomicU32,
    _reserved1: AtomicU32,
    control_heartbeat: AtomicU64,
}

const _: () = assert!(offset_of!(Header, total_bytes) == 16);
const _: () = assert!(offset_of!(Header, control_pid) == 128);
const _: () = assert!(size_of::<Header>() <= HEADER_BYTES);

/// Why [`Region::attach`] refused a file. Every message starts with the path.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Opening, reading or mapping failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The magic is missing.
    #[error("{path}: not an RVS shared-memory file")]
    NotRvs {
        /// The file.
        path: PathBuf,
    },
    /// Another layout version.
    #[error("{path}: layout version {found}, this build reads {LAYOUT_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
    },
    /// The file is shorter than its header says.
    #[error("{path}: file is {len} bytes, header describes {need}")]
    Short {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length its header describes.
        need: u64,
    },
    /// The header contradicts itself.
    #[error("{path}: inconsistent header: {what}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// What does not add up.
        what: String,
    },
}

/// A mapped RVS shared-memory file (see the crate doc for the layout).
///
/// Offsets and sizes are validated once, at creation or attachment, and kept in this process;
/// the header in shared memory is never trusted again for addressing.
pub struct Region {
    map: MmapRaw,
    layout: Layout,
    params: Params,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("path", &self.path)
            .field("params", &self.params)
            .field("boot_id", &self.boot_id())
            .finish_non_exhaustive()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Region {
    /// Creates a fresh region at `path` (dataplane side): writes a temporary file in the same
    /// directory, sizes and zeroes it, writes the header, then renames it over `path`, so a
    /// process that still maps an older file keeps its inode and can tell
    /// ([`is_current`](Self::is_current)). The file is created with mode 0600.
    pub fn create(path: impl AsRef<Path>, params: &Params) -> io::Result<Arc<Region>> {
        let path = path.as_ref();
        let layout =
            Layout::new(params).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a file path", path.display()),
            )
        })?;
        let pid = std::process::id();
        let boot_id = (now_ns() ^ u64::from(pid) << 32).max(1);
        let tmp = path.with_file_name(format!(".{}.{pid}.{boot_id:x}.tmp", name.to_string_lossy()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let result = (|| {
            file.set_len(layout.total as u64)?;
            allocate(&file, layout.total)?;
            let map = MmapRaw::map_raw(&file)?;
            let meta = file.metadata()?;
            let region = Region {
                map,
                layout,
                params: *params,
                path: path.to_path_buf(),
                dev: meta.dev(),
                ino: meta.ino(),
            };
            region.write_header(pid, boot_id);
            fs::rename(&tmp, path)?;
            Ok(Arc::new(region))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_header(&self, pid: u32, boot_id: u64) {
        let h = self.header();
        let (l, p) = (&self.layout, &self.params);
        h.version.store(LAYOUT_VERSION, Relaxed);
        h.header_bytes.store(HEADER_BYTES as u32, Relaxed);
        h.total_bytes.store(l.total as u64, Relaxed);
        h.cmd_ring_off.store(l.cmd_ring as u64, Relaxed);
        h.cmd_ring_bytes.store(p.cmd_ring_bytes as u64, Relaxed);
        h.reply_ring_off.store(l.reply_ring as u64, Relaxed);
        h.reply_ring_bytes.store(p.reply_ring_bytes as u64, Relaxed);
        h.stats_off.store(l.stats as u64, Relaxed);
        h.stats_block_bytes.store(l.block_bytes as u64, Relaxed);
        h.max_workers.store(p.workers, Relaxed);
        h.entries_per_worker.store(p.entries_per_worker, Relaxed);
        h.boot_id.store(boot_id, Relaxed);
        h.dataplane_pid.store(pid, Relaxed);
        // Last: a reader that sees the magic sees a complete header (the rename already makes
        // the file invisible until now; this is belt and braces).
        h.magic.store(MAGIC, Release);
    }

    /// Attaches to an existing region (control side): checks the magic, the layout version,
    /// that the header is self-consistent and that the file is as long as it describes.
    pub fn attach(path: impl AsRef<Path>) -> Result<Arc<Region>, AttachError> {
        let path = path.as_ref();
        let io_err = |source| AttachError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        let len = meta.len();
        // Read the header with read(2), not through a mapping: a short file would fault.
        let mut buf = [0u8; HEADER_BYTES];
        let n = read_prefix(&file, &mut buf).map_err(io_err)?;
        let u64_at = |off: usize| {
            (off + 8 <= n).then(|| u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap()))
        };
        let u32_at = |off: usize| {
            (off + 4 <= n).then(|| u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()))
        };
        if u64_at(offset_of!(Header, magic)) != Some(MAGIC) {
            return Err(AttachError::NotRvs {
                path: path.to_path_buf(),
            });
        }
        match u32_at(offset_of!(Header, version)) {
            Some(LAYOUT_VERSION) => {}
            Some(found) => {
                return Err(AttachError::Version {
                    path: path.to_path_buf(),
                    found,
                });
            }
            None => {
                return Err(AttachError::Short {
                    path: path.to_path_buf(),
                    len,
                    need: HEADER_BYTES as u64,
                });
            }
        }
        let need = u64_at(offset_of!(Header, total_bytes)).unwrap_or(HEADER_BYTES as u64);
        if len < need || len < HEADER_BYTES as u64 {
            return Err(AttachError::Short {
                path: path.to_path_buf(),
                len,
                need: need.max(HEADER_BYTES as u64),
            });
        }
        // The whole header is readable from here on.
        let field64 = |off| u64_at(off).unwrap_or(0);
        let field32 = |off| u32_at(off).unwrap_or(0);
        let inconsistent = |what: String| AttachError::Inconsistent {
            path: path.to_path_buf(),
            what,
        };
        let params = Params {
            cmd_ring_bytes: field64(offset_of!(Header, cmd_ring_bytes)) as usize,
            reply_ring_bytes: field64(offset_of!(Header, reply_ring_bytes)) as usize,
            workers: field32(offset_of!(Header, max_workers)),
            entries_per_worker: field32(offset_of!(Header, entries_per_worker)),
        };
        let layout = Layout::new(&params).map_err(inconsistent)?;
        let stored = [
            (
                "header_bytes",
                u64::from(field32(offset_of!(Header, header_bytes))),
                HEADER_BYTES,
            ),
            ("total_bytes", need, layout.total),
            (
                "cmd_ring_off",
                field64(offset_of!(Header, cmd_ring_off)),
                layout.cmd_ring,
            ),
            (
                "reply_ring_off",
                field64(offset_of!(Header, reply_ring_off)),
                layout.reply_ring,
            ),
            (
                "stats_off",
                field64(offset_of!(Header, stats_off)),
                layout.stats,
            ),
            (
                "stats_block_bytes",
                field64(offset_of!(Header, stats_block_bytes)),
                layout.block_bytes,
            ),
        ];
        for (name, found, expected) in stored {
            if found != expected as u64 {
                return Err(inconsistent(format!(
                    "{name} is {found}, the parameters give {expected}"
                )));
            }
        }
        let map = MmapRaw::map_raw(&file).map_err(io_err)?;
        if map.len() < layout.total {
            // Truncated between the check and the mapping.
            return Err(AttachError::Short {
                path: path.to_path_buf(),
                len: map.len() as u64,
                need: layout.total as u64,
            });
        }
        Ok(Arc::new(Region {
            map,
            layout,
            params,
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        }))
    }

    /// Whether `path` still names the mapped file (same device and inode): false once the
    /// dataplane re-created or removed it.
    pub fn is_current(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    /// Unlinks `path` if it still names the mapped file (dataplane at clean exit). The mapping
    /// stays valid until the last handle is dropped. (Check then unlink: a file created in
    /// between by another dataplane on the same path would be removed; one dataplane per path.)
    pub fn remove(&self) -> io::Result<()> {
        if !self.is_current() {
            return Ok(());
        }
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// The path the region was created at or attached from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sizes the region was created with.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.layout.total
    }

    /// Always false (a region has at least its header); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Pid of the dataplane that created the region.
    pub fn dataplane_pid(&self) -> u32 {
        self.header().dataplane_pid.load(Relaxed)
    }

    /// Unique per [`create`](Self::create): a changed boot id means a restarted dataplane.
    pub fn boot_id(&self) -> u64 {
        self.header().boot_id.load(Relaxed)
    }

    /// Dataplane liveness, milliseconds since the Unix epoch.
    pub fn set_dataplane_heartbeat(&self, ms_since_unix_epoch: u64) {
        self.header()
            .dataplane_heartbeat
            .store(ms_since_unix_epoch, Relaxed);
    }

    /// The last [`set_dataplane_heartbeat`](Self::set_dataplane_heartbeat) (0 = never).
    pub fn dataplane_heartbeat(&self) -> u64 {
        self.header().dataplane_heartbeat.load(Relaxed)
    }

    /// Records the attached control process.
    pub fn set_control_pid(&self, pid: u32) {
        self.header().control_pid.store(pid, Relaxed);
    }

    /// Pid of the last attached control process (0 = none yet).
    pub fn control_pid(&self) -> u32 {
        self.header().control_pid.load(Relaxed)
    }

    /// Control liveness, milliseconds since the Unix epoch.
    pub fn set_control_heartbeat(&self, ms_since_unix_epoch: u64) {
        self.header()
            .control_heartbeat
            .store(ms_since_unix_epoch, Relaxed);
    }

    /// The last [`set_control_heartbeat`](Self::set_control_heartbeat) (0 = never).
    pub fn control_heartbeat(&self) -> u64 {
        self.header().control_heartbeat.load(Relaxed)
    }

    /// The config generation the dataplane runs (set by the dataplane).
    pub fn set_generation(&self, generation: u64) {
        self.header().generation.store(generation, Release);
    }

    /// The config generation the dataplane runs.
    pub fn generation(&self) -> u64 {
        self.header().generation.load(Acquire)
    }

    /// Sets the number of worker stats blocks in use, clamped to `params().workers`.
    pub fn set_workers(&self, n: u32) {
        self.header()
            .workers
            .store(n.min(self.params.workers), Release);
    }

    /// Number of worker stats blocks in use (≤ `params().workers`).
    pub fn workers(&self) -> u32 {
        self.header().workers.load(Acquire).min(self.params.workers)
    }

    /// The command ring's producer (rvs-control). One per ring: see [`Producer`].
    pub fn command_producer(self: &Arc<Self>) -> Producer {
        Producer::new(self.clone(), RingId::Command)
    }

    /// The command ring's consumer (dataplane main lcore). One per ring: see [`Consumer`].
    pub fn command_consumer(self: &Arc<Self>) -> Consumer {
        Consumer::new(self.clone(), RingId::Command)
    }

    /// The reply ring's producer (dataplane main lcore). One per ring: see [`Producer`].
    pub fn reply_producer(self: &Arc<Self>) -> Producer {
        Producer::new(self.clone(), RingId::Reply)
    }

    /// The reply ring's consumer (rvs-control). One per ring: see [`Consumer`].
    pub fn reply_consumer(self: &Arc<Self>) -> Consumer {
        Consumer::new(self.clone(), RingId::Reply)
    }

    /// The writer of worker `worker`'s stats block (one per worker).
    ///
    /// # Panics
    /// If `worker >= params().workers`.
    pub fn stats_writer(self: &Arc<Self>, worker: usize) -> StatsWriter {
        assert!(
            worker < self.params.workers as usize,
            "stats block {worker} does not exist (the region has {})",
            self.params.workers
        );
        StatsWriter::new(self.clone(), worker)
    }

    /// A reader of the stats blocks.
    pub fn stats_reader(self: &Arc<Self>) -> StatsReader {
        StatsReader::new(self.clone())
    }

    /// TEST HOOK — not for production code. Xors `mask` into the byte `offset` bytes after
    /// the consumer index of `ring` (offset 0 = the first byte of the next unread frame), as
    /// a stray write from a broken peer would. Lets integration tests corrupt a published
    /// frame.
    #[doc(hidden)]
    pub fn corrupt_for_test(&self, ring: RingId, offset: u64, mask: u8) {
        let v = self.ring_view(ring);
        let pos = v.cons.load(Relaxed).wrapping_add(offset);
        let word = &v.data[(pos / 8) as usize & (v.data.len() - 1)];
        word.fetch_xor(u64::from(mask) << ((pos % 8) * 8), Relaxed);
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned and at least HEADER_BYTES ≥ size_of::<Header>()
        // long (checked at create/attach) and lives as long as `self`. `Header` is made of
        // atomics only: every bit pattern is valid, and they are the only accesses anyone
        // makes, so shared mutation (by this or the other process) is sound.
        unsafe { &*self.map.as_mut_ptr().cast::<Header>() }
    }

    /// `n` atomic words at byte offset `off`.
    fn words(&self, off: usize, n: usize) -> &[AtomicU64] {
        assert!(off.is_multiple_of(8) && off + n * 8 <= self.layout.total);
        // SAFETY: in bounds of the mapping (asserted; the mapping is at least layout.total
        // bytes, checked at create/attach) and 8-byte aligned (page-aligned base, offset a
        // multiple of 8). The memory lives as long as `self`, is only ever accessed through
        // atomics, and any bit pattern is a valid AtomicU64.
        unsafe { slice::from_raw_parts(self.map.as_mut_ptr().add(off).cast::<AtomicU64>(), n) }
    }

    pub(crate) fn ring_view(&self, ring: RingId) -> RingView<'_, AtomicU64> {
        let (off, bytes) = match ring {
            RingId::Command => (self.layout.cmd_ring, self.params.cmd_ring_bytes),
            RingId::Reply => (self.layout.reply_ring, self.params.reply_ring_bytes),
        };
        let ctrl = self.words(off, RING_CTRL_BYTES / 8);
        RingView {
            prod: &ctrl[0],
            cons: &ctrl[CONS_INDEX_AT / 8],
            data: self.words(off + RING_CTRL_BYTES, bytes / 8),
        }
    }

    pub(crate) fn stats_block(&self, worker: usize) -> &[AtomicU64] {
        assert!(worker < self.params.workers as usize);
        let words = self.layout.block_bytes / 8;
        self.words(self.layout.stats + worker * self.layout.block_bytes, words)
    }
}

/// Reserves the file's memory now, so a full tmpfs fails `create` instead of killing a
/// process with SIGBUS on first touch.
fn allocate(file: &File, len: usize) -> io::Result<()> {
    // SAFETY: plain syscall on an open descriptor we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate: the sparse file still works.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Reads up to `buf.len()` bytes from the start of `file`; returns how many were read.
fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
