//! `rvs-shm` is the shared-memory link between `rvs-control` and `rvs-dataplane` (SPEC §2):
//! a file (default `/dev/shm/rvs`) that the dataplane creates and the control process
//! attaches to. It holds a command ring (control → dataplane main lcore), a reply ring
//! (dataplane → control, answering each command with its `seq`) and the stats region the
//! workers publish into (one block per worker, one writer per block).
//!
//! ```text
//! offset                         contents
//! 0                              header (one page, every field atomic)
//!                                  magic "RVSSHM01" u64, layout version u32 (= 1),
//!                                  header bytes, total bytes, ring/stats offsets and sizes,
//!                                  params, boot_id, dataplane_pid, workers in use,
//!                                  generation, dataplane heartbeat;
//!                                  at +128 (own cache line): control_pid, control heartbeat
//! 4096                           command ring: producer index (+0), consumer index (+64),
//!                                  data area (+128, cmd_ring_bytes, a power of two)
//! 4096+128+cmd                   reply ring: same shape, reply_ring_bytes
//! …+128+reply                    stats: `workers` blocks of
//!                                  8 words (seq, lcore, generation, n_entries, truncated, …)
//!                                  + 48 counters + 32 drops
//!                                  + entries_per_worker × 8-word traffic entries
//! total (a multiple of 4096)
//! ```
//!
//! Ring frames and their checks are described in [`ring`]; the seqlock and the entry packing
//! in [`stats`]; the JSON messages in [`proto`].
//!
//! Life cycle: the dataplane [`Region::create`]s a fresh file at every boot (temporary file
//! renamed over the path, new [`Region::boot_id`]) and [`Region::remove`]s it at clean exit.
//! The control process [`Region::attach`]es, drains the reply ring ([`Consumer::drain`]) of
//! replies meant for a predecessor, and polls [`Region::is_current`] to notice a restarted
//! dataplane (the old mapping stays valid; re-attach to the new file). Since commands a
//! predecessor left on the command ring may still be answered after the drain, a control
//! process should start its `seq` numbers somewhere of its own (e.g. at its start time) and
//! ignore replies to sequence numbers it did not send.
//!
//! Every access to shared memory is atomic: the header fields, the ring indices and data
//! (as 64-bit words) and the stats. Offsets are validated once and kept in the process, so a
//! peer scribbling over the header cannot make this process address outside the mapping.
//! Truncating the file under a mapping would still fault (SIGBUS); nothing here does that.
//!
//! Tests: `cargo test -p rvs-shm`. The loom models of the ring index protocol and the seqlock
//! (the same generic code, instantiated with loom atomics) run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p rvs-shm --release --lib loom`
//! (a separate target directory keeps the normal build's artefacts).

pub mod proto;
mod region;
pub mod ring;
pub mod stats;
mod sync;

pub use proto::{Command, ConnEntry, KIND_COMMAND, KIND_REPLY, Reply, SvcKey, SvcKeyError};
pub use region::{
    AttachError, HEADER_BYTES, LAYOUT_VERSION, MAGIC, MAX_ENTRIES_PER_WORKER, MAX_RING_BYTES,
    MAX_WORKERS, MIN_RING_BYTES, Params, Region,
};
pub use ring::{Consumer, Frame, FrameError, Producer, RingError, RingId};
pub use stats::{
    COUNTER_NAMES, DROP_NAMES, DROP_SLOTS, ENTRY_COUNT_MAX, StatsReader, StatsWriter, TrafficEntry,
    WORKER_COUNTERS, WorkerStats,
};
