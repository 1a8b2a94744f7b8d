//! What the REST server needs from the dataplane link, as a trait so the server is written (and
//! unit-tested) without a running dataplane. `link::ShmLink` is the real implementation over the
//! shared-memory rings; tests use an in-memory one.

use rvs_config::{Profile, ServiceKey};

use crate::api::{ConnPage, Healthz, StatsView};

/// Why the dataplane did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The dataplane refused the request (it names the problem; nothing was applied).
    #[error("{message}")]
    Rejected {
        /// What it said.
        message: String,
        /// Key path at fault, when known.
        field: Option<String>,
    },
    /// The dataplane is not attached or did not answer in time.
    #[error("dataplane unavailable: {0}")]
    Unavailable(String),
}

/// The dataplane as the control process sees it.
///
/// `apply` is the only way configuration changes: the caller has validated `config` in full;
/// the dataplane builds its snapshot from it atomically or refuses it whole.
pub trait Backend: Send + Sync + 'static {
    /// Installs `config` (services, firewall marks, timeouts; boot-only sections must equal the
    /// running ones), the effective form of the operator's `desired` configuration (which the
    /// dataplane keeps for a control process that restarts). Returns the generation the
    /// dataplane now runs.
    fn apply(
        &self,
        config: Profile,
        desired: Profile,
    ) -> impl std::future::Future<Output = Result<u64, BackendError>> + Send;

    /// The operator's configuration as the dataplane knows it: the desired configuration last
    /// applied, or what it booted with.
    fn live_config(
        &self,
    ) -> impl std::future::Future<Output = Result<Profile, BackendError>> + Send;

    /// One page of connections (and persistence templates when `templates`), at most `limit`.
    fn connections(
        &self,
        offset: u64,
        limit: u32,
        templates: bool,
    ) -> impl std::future::Future<Output = Result<ConnPage, BackendError>> + Send;

    /// Zeroes traffic counters of one service, or of everything.
    fn zero(
        &self,
        service: Option<ServiceKey>,
    ) -> impl std::future::Future<Output = Result<(), BackendError>> + Send;

    /// Live counters and rates of `config`'s services (effective weights, active/inactive
    /// counts from the stats region, rates from the estimator).
    fn stats(&self, config: &Profile) -> StatsView;

    /// Liveness of the dataplane and the link.
    fn healthz(&self) -> Healthz;
}
