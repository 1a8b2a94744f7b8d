//! The main lcore's conversation with each worker: configuration snapshots, connection
//! listings and counter zeroing go in, retired snapshots and answers come back.
//!
//! Two bounded lock-free queues per worker (`crossbeam`'s `ArrayQueue`): the worker looks at
//! its inbox once per loop turn (one atomic load when empty) and answers in the same turn, so
//! nothing here touches the per-packet path. A snapshot the worker stops using travels back
//! in [`FromWorker::Retired`] and is dropped by the main lcore: the worker never frees
//! configuration memory, and once it has handed a snapshot back it holds no reference to it
//! (its quiescent point).

use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use rvs_config::ServiceKey;

use crate::pipeline::{ConnInfo, Worker};
use crate::snapshot::Snapshot;

/// Messages a worker's inbox holds at most.
pub const DEPTH: usize = 16;

/// Main lcore → worker.
#[derive(Debug)]
pub enum ToWorker {
    /// Switch to this snapshot, configuration generation `u64`.
    Install(Arc<Snapshot>, u64),
    /// List connections: skip `offset` matching entries, return at most `limit`.
    List {
        /// Matching entries to skip.
        offset: u64,
        /// Entries to return at most.
        limit: u32,
        /// Include persistence templates.
        templates: bool,
    },
    /// Zero the traffic counters of this service (or all).
    Zero(Option<ServiceKey>),
}

/// Worker → main lcore.
#[derive(Debug)]
pub enum FromWorker {
    /// The snapshot the worker used before generation `u64`; drop it here.
    Retired(Arc<Snapshot>, u64),
    /// A page of connections and how many entries matched in all.
    Conns {
        /// Worker index.
        worker: u16,
        /// The page.
        items: Vec<ConnInfo>,
        /// Matching entries on this worker.
        total: u64,
    },
    /// Counters zeroed.
    Zeroed(u16),
}

/// The two queues between the main lcore and one worker.
#[derive(Debug)]
pub struct Mailbox {
    /// Main lcore → worker.
    pub inbox: ArrayQueue<ToWorker>,
    /// Worker → main lcore.
    pub outbox: ArrayQueue<FromWorker>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            inbox: ArrayQueue::new(DEPTH),
            outbox: ArrayQueue::new(DEPTH),
        }
    }
}

impl Mailbox {
    /// Handles every message waiting for `worker` at dataplane time `now` (seconds).
    /// Returns the configuration generation it runs when it installed one. An answer that
    /// finds the outbox full is dropped (the main lcore waits with a timeout and reports it).
    #[inline]
    pub fn serve(&self, worker: &mut Worker, now: u32) -> Option<u64> {
        if self.inbox.is_empty() {
            return None;
        }
        let mut installed = None;
        while let Some(msg) = self.inbox.pop() {
            let answer = match msg {
                ToWorker::Install(snap, generation) => {
                    installed = Some(generation);
                    FromWorker::Retired(worker.install(snap), generation)
                }
                ToWorker::List {
                    offset,
                    limit,
                    templates,
                } => {
                    let mut total = 0u64;
                    let mut items = Vec::new();
                    for c in worker.connections(now) {
                        if c.template && !templates {
                            continue;
                        }
                        if total >= offset && items.len() < limit as usize {
                            items.push(c);
                        }
                        total += 1;
                    }
                    FromWorker::Conns {
                        worker: worker.id,
                        items,
                        total,
                    }
                }
                ToWorker::Zero(key) => {
                    match key {
                        None => worker.zero_traffic(None),
                        Some(k) => {
                            if let Some(i) =
                                worker.snapshot().services.iter().position(|s| s.key == k)
                            {
                                worker.zero_traffic(Some(i));
                            }
                        }
                    }
                    FromWorker::Zeroed(worker.id)
                }
            };
            // The main lcore drains its outbox before it asks again; a full one means it gave
            // up waiting, and the answer is stale anyway.
            let _ = self.outbox.push(answer);
        }
        installed
    }
}
