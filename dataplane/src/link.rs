//! The dataplane's end of the control link: the main lcore reads commands from the
//! shared-memory command ring, acts on them and answers on the reply ring.
//!
//! Bounded work per main-loop turn ([`MAX_COMMANDS_PER_TURN`]). A frame that fails its checks
//! (magic, version, length, checksum) or a payload that is not a known command is answered with
//! [`Reply::Error`] and nothing is applied. `Apply` is checked in full by
//! [`Running::apply`]; the new snapshot then goes to every worker's mailbox, and the command is
//! answered once every worker runs it (so an `Applied` reply means new connections are
//! scheduled by the new configuration). Old snapshots come back from the workers and are
//! dropped here, off the workers.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_shm::{Command, ConnEntry, Consumer, KIND_REPLY, Producer, Region, Reply, RingError};

use crate::configure::Running;
use crate::mailbox::{FromWorker, Mailbox, ToWorker};
use crate::snapshot::Snapshot;

/// Commands handled per main-loop turn at most.
pub const MAX_COMMANDS_PER_TURN: usize = 8;
/// How long the main lcore waits for every worker to answer.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(2);
/// Connection entries per listing page at most.
pub const MAX_PAGE: u32 = 10_000;

/// The main lcore's end of the link.
#[derive(Debug)]
pub struct Link {
    region: Arc<Region>,
    commands: Consumer,
    replies: Producer,
    running: Running,
    mailboxes: Vec<Arc<Mailbox>>,
    /// The operator's configuration the control process last sent with `Apply` (kept for a
    /// control process that restarts).
    desired: Option<Box<rvs_config::Profile>>,
    /// Frames refused so far.
    pub rejected: u64,
}

impl Link {
    /// The link over `region` for a dataplane running `running` with these workers' mailboxes.
    pub fn new(region: Arc<Region>, running: Running, mailboxes: Vec<Arc<Mailbox>>) -> Link {
        region.set_generation(running.generation());
        Link {
            commands: region.command_consumer(),
            replies: region.reply_producer(),
            region,
            running,
            mailboxes,
            desired: None,
            rejected: 0,
        }
    }

    /// The shared region.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// The configuration in force.
    pub fn running(&self) -> &Running {
        &self.running
    }

    /// Handles up to [`MAX_COMMANDS_PER_TURN`] commands against the snapshot `current`.
    /// Returns the new snapshot when a configuration was applied (the caller switches its own
    /// view: neighbour resolution, gratuitous ARP).
    pub fn serve(&mut self, current: &Arc<Snapshot>) -> Option<Arc<Snapshot>> {
        let mut latest: Option<Arc<Snapshot>> = None;
        for _ in 0..MAX_COMMANDS_PER_TURN {
            let Some(received) = self.commands.recv() else {
                break;
            };
            let frame = match received {
                Ok(f) => f,
                Err(e) => {
                    self.rejected += 1;
                    tracing::warn!(error = %e, "control link: frame refused");
                    let seq = match e {
                        rvs_shm::FrameError::BadChecksum { seq } => seq,
                        _ => 0,
                    };
                    self.reply(seq, &refused(format!("frame refused: {e}")));
                    continue;
                }
            };
            if frame.kind != rvs_shm::KIND_COMMAND {
                self.rejected += 1;
                self.reply(
                    frame.seq,
                    &refused(format!("frame kind {} is not a command", frame.kind)),
                );
                continue;
            }
            let cmd = match Command::decode(&frame.payload) {
                Ok(c) => c,
                Err(e) => {
                    self.rejected += 1;
                    self.reply(
                        frame.seq,
                        &refused(format!("unknown or malformed command: {e}")),
                    );
                    continue;
                }
            };
            let snap = latest.as_ref().unwrap_or(current);
            let (answer, applied) = self.handle(cmd, snap);
            if let Some(s) = applied {
                latest = Some(s);
            }
            self.reply(frame.seq, &answer);
        }
        latest
    }

    fn handle(&mut self, cmd: Command, current: &Arc<Snapshot>) -> (Reply, Option<Arc<Snapshot>>) {
        match cmd {
            Command::Ping => (
                Reply::Pong {
                    generation: self.running.generation(),
                    workers: self.mailboxes.len() as u32,
                },
                None,
            ),
            Command::GetConfig => (
                Reply::Config {
                    generation: self.running.generation(),
                    config: Box::new(self.running.profile().clone()),
                    desired: self.desired.clone(),
                },
                None,
            ),
            Command::Apply {
                generation,
                config,
                desired,
            } => match self.running.apply(generation, *config, current) {
                Err(r) => (
                    Reply::Error {
                        message: r.message,
                        field: r.field,
                    },
                    None,
                ),
                Ok(snap) => {
                    self.desired = desired;
                    let answer = match self.install(&snap, generation) {
                        Ok(()) => Reply::Applied { generation },
                        Err(e) => refused(e),
                    };
                    self.region.set_generation(generation);
                    tracing::info!(
                        generation,
                        services = snap.services.len(),
                        "configuration applied"
                    );
                    (answer, Some(snap))
                }
            },
            Command::ListConns {
                offset,
                limit,
                templates,
            } => (self.list(offset, limit.min(MAX_PAGE), templates), None),
            Command::Zero { service } => {
                let key = match service.map(|k| k.to_key()).transpose() {
                    Ok(k) => k,
                    Err(e) => return (refused(e.to_string()), None),
                };
                for mb in &self.mailboxes {
                    let _ = mb.inbox.push(ToWorker::Zero(key));
                }
                let answer = match self.collect(|m| matches!(m, FromWorker::Zeroed(_))) {
                    Ok(_) => Reply::Done,
                    Err(e) => refused(e),
                };
                (answer, None)
            }
        }
    }

    /// Hands `snap` to every worker and waits until each runs it.
    fn install(&mut self, snap: &Arc<Snapshot>, generation: u64) -> Result<(), String> {
        for (w, mb) in self.mailboxes.iter().enumerate() {
            if mb
                .inbox
                .push(ToWorker::Install(Arc::clone(snap), generation))
                .is_err()
            {
                return Err(format!("worker {w}: mailbox full"));
            }
        }
        self.collect(|m| matches!(m, FromWorker::Retired(..)))
            .map(drop)
    }

    /// Waits for one answer matching `want` from every worker; old snapshots coming back are
    /// dropped here. Returns the answers in worker order.
    fn collect(&self, want: impl Fn(&FromWorker) -> bool) -> Result<Vec<FromWorker>, String> {
        let mut out = Vec::with_capacity(self.mailboxes.len());
        for (w, mb) in self.mailboxes.iter().enumerate() {
            out.push(wait_one(mb, &want).ok_or_else(|| format!("worker {w} did not answer"))?);
        }
        Ok(out)
    }

    /// One page across the workers, worker 0's entries first.
    fn list(&self, offset: u64, limit: u32, templates: bool) -> Reply {
        let mut items: Vec<ConnEntry> = Vec::new();
        let mut skip = offset;
        let mut seen = 0u64;
        for (w, mb) in self.mailboxes.iter().enumerate() {
            let room = limit.saturating_sub(items.len() as u32);
            if mb
                .inbox
                .push(ToWorker::List {
                    offset: skip,
                    limit: room,
                    templates,
                })
                .is_err()
            {
                return refused(format!("worker {w}: mailbox full"));
            }
            let Some(FromWorker::Conns {
                items: page, total, ..
            }) = wait_one(mb, |m| matches!(m, FromWorker::Conns { .. }))
            else {
                return refused(format!("worker {w} did not answer"));
            };
            seen += total;
            skip = skip.saturating_sub(total);
            items.extend(page.into_iter().map(|c| ConnEntry {
                // Templates carry the service's protocol with the template bit (a mark
                // template has none: 0).
                protocol: c.proto & 0x7f,
                state: c.state.to_string(),
                expires: c.expires_in,
                client: SocketAddrV4::new(c.client.0, c.client.1),
                virt: SocketAddrV4::new(c.virtual_.0, c.virtual_.1),
                dest: SocketAddrV4::new(c.dest.0, c.dest.1),
                local: c.local.map(|(a, p)| SocketAddrV4::new(a, p)),
                template: c.template,
                worker: w as u32,
            }));
        }
        let next = offset + items.len() as u64;
        Reply::Conns {
            items,
            next_offset: (next < seen).then_some(next),
        }
    }

    fn reply(&self, seq: u64, reply: &Reply) {
        let payload = reply.encode();
        let start = Instant::now();
        loop {
            match self.replies.send(KIND_REPLY, seq, &payload) {
                Ok(()) => return,
                Err(RingError::Full) if start.elapsed() < WORKER_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    tracing::warn!(seq, error = %e, "control link: reply not sent");
                    let short = refused(format!("reply not sent: {e}")).encode();
                    let _ = self.replies.send(KIND_REPLY, seq, &short);
                    return;
                }
            }
        }
    }
}

fn refused(message: String) -> Reply {
    Reply::Error {
        message,
        field: None,
    }
}

/// The next answer of one worker matching `want`, dropping retired snapshots (and stale
/// answers) on the way; `None` after [`WORKER_TIMEOUT`].
fn wait_one(mb: &Mailbox, want: impl Fn(&FromWorker) -> bool) -> Option<FromWorker> {
    let start = Instant::now();
    loop {
        while let Some(m) = mb.outbox.pop() {
            if want(&m) {
                return Some(m);
            }
            // A retired snapshot or an answer nobody waits for any more: dropped here.
        }
        if start.elapsed() > WORKER_TIMEOUT {
            return None;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}
