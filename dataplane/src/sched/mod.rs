//! Schedulers: pick a real server for a new connection, with IPVS semantics.
//!
//! Each scheduler separates building its state (off the hot path, from the service's server
//! list) from picking (on it: no allocation, bounded work). Servers are seen through
//! [`DestLoad`], a per-worker view of weight, flags and connection counts in list order; a pick
//! returns the index of the chosen server in that list, or `None` when no server is available
//! (IPVS then drops the packet and logs "no destination available").
//!
//! Per-core note: IPVS keeps one scheduler state per service under a lock. RVS keeps one per
//! worker (as DPVS does), so each worker walks its own round-robin sequence; with one worker
//! the sequence is exactly the kernel's.

mod rr;
mod wrr;

pub use rr::RoundRobin;
pub use wrr::WeightedRoundRobin;

use rvs_config::Scheduler as SchedulerName;

/// What a scheduler sees of one real server at pick time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestLoad {
    /// Current weight; 0 means quiesced (no new connections).
    pub weight: u32,
    /// IPVS's IP_VS_DEST_F_OVERLOAD: the upper connection threshold was reached.
    pub overloaded: bool,
    /// Connections in ESTABLISHED.
    pub active: u32,
    /// Other connections.
    pub inactive: u32,
}

impl DestLoad {
    /// A server with `weight` and no connections.
    pub const fn with_weight(weight: u32) -> Self {
        Self {
            weight,
            overloaded: false,
            active: 0,
            inactive: 0,
        }
    }

    /// IPVS's eligibility test used by rr and wrr: not overloaded and weight > 0.
    #[inline]
    pub fn available(&self) -> bool {
        !self.overloaded && self.weight > 0
    }
}

/// Per-service scheduler state, one variant per scheduler.
#[derive(Debug, Clone)]
pub enum Sched {
    /// Round robin.
    Rr(RoundRobin),
    /// Weighted round robin.
    Wrr(WeightedRoundRobin),
}

/// The named scheduler is not part of this build yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("scheduler {0} is not implemented by this dataplane yet (rr and wrr are)")]
pub struct Unsupported(pub &'static str);

impl Sched {
    /// Builds the state for `name` over `dests` (off the hot path).
    pub fn build(name: SchedulerName, dests: &[DestLoad]) -> Result<Sched, Unsupported> {
        match name {
            SchedulerName::Rr => Ok(Sched::Rr(RoundRobin::new())),
            SchedulerName::Wrr => Ok(Sched::Wrr(WeightedRoundRobin::new(dests))),
            other => Err(Unsupported(other.as_str())),
        }
    }

    /// Re-derives weight-dependent state after the server list or weights changed.
    pub fn update(&mut self, dests: &[DestLoad]) {
        match self {
            Sched::Rr(s) => s.update(dests),
            Sched::Wrr(s) => s.update(dests),
        }
    }

    /// Picks a server for a new connection.
    #[inline]
    pub fn pick(&mut self, dests: &[DestLoad]) -> Option<usize> {
        match self {
            Sched::Rr(s) => s.pick(dests),
            Sched::Wrr(s) => s.pick(dests),
        }
    }
}
