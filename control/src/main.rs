//! `rvs-control --profile FILE`: the control process (SPEC §2, §10).
//!
//! Reads the profile's `control` section (shared-memory file, API address, token file),
//! attaches to the dataplane, serves the REST API, runs the health checks and keeps the
//! dataplane on the desired configuration: when it attaches to a dataplane it has not seen
//! (a first start, or a dataplane that restarted) it either adopts the dataplane's running
//! configuration (this process just started and found one already running) or re-pushes its own
//! desired configuration (the dataplane restarted from its boot profile).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use rvs_config::Profile;
use rvs_control::backend::Backend;
use rvs_control::health::HealthChecker;
use rvs_control::link::ShmLink;
use rvs_control::server::{self, AppState, HealthSource, MetricsRenderer};

/// RVS control process: REST API, health checks, the link to rvs-dataplane.
#[derive(Debug, Parser)]
#[command(name = "rvs-control", version)]
struct Args {
    /// The appliance profile (its `control` section is used; `services` seed the desired
    /// configuration when no dataplane runs yet).
    #[arg(long)]
    profile: PathBuf,
    /// Do not run health checks (the desired configuration goes to the dataplane as it is).
    #[arg(long)]
    no_health: bool,
}

/// The health checker, or none.
#[derive(Debug, Clone)]
struct Health(Option<HealthChecker>);

impl HealthSource for Health {
    fn effective(&self, desired: &Profile) -> Profile {
        match &self.0 {
            Some(h) => h.effective(desired),
            None => desired.clone(),
        }
    }
    fn reconcile(&self, desired: &Profile) {
        if let Some(h) = &self.0 {
            h.reconcile(desired);
        }
    }
    fn views(&self) -> Vec<rvs_control::api::HealthView> {
        self.0
            .as_ref()
            .map(HealthChecker::views)
            .unwrap_or_default()
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let profile = match Profile::load(&args.profile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rvs-control: {e}");
            return ExitCode::from(1);
        }
    };
    let token = match &profile.control.token_file {
        None => None,
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            Ok(_) => {
                eprintln!(
                    "rvs-control: control.token_file {}: the file is empty",
                    f.display()
                );
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("rvs-control: control.token_file {}: {e}", f.display());
                return ExitCode::from(1);
            }
        },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rvs-control: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(profile, token, args.no_health)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-control: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(profile: Profile, token: Option<String>, no_health: bool) -> Result<(), String> {
    let control = profile.control.clone();
    let link = ShmLink::new(&control.shm);
    let health = Health((!no_health).then(HealthChecker::new));
    if token.is_none() && !control.listen.ip().is_loopback() {
        tracing::warn!(listen = %control.listen, "no token_file: only loopback clients are served");
    }
    let listener = tokio::net::TcpListener::bind(control.listen)
        .await
        .map_err(|e| format!("control.listen {}: {e}", control.listen))?;
    tracing::info!(listen = %control.listen, shm = %control.shm.display(), "rvs-control listening");

    let state = AppState::new(profile, link.clone(), health.clone(), token);
    state.health().reconcile(&state.desired());

    // A dataplane seen for the first time: adopt its running configuration if this process
    // has pushed nothing yet (it just started), otherwise re-push ours (it restarted).
    let pushed = Arc::new(AtomicBool::new(false));
    let watcher = {
        let state = Arc::clone(&state);
        let pushed = Arc::clone(&pushed);
        link.clone().watch(move |link: ShmLink| {
            let state = Arc::clone(&state);
            let pushed = Arc::clone(&pushed);
            async move {
                if !pushed.swap(true, Ordering::SeqCst) {
                    match link.live_config().await {
                        Ok(live) => {
                            tracing::info!(
                                services = live.services.len(),
                                "adopting the dataplane's running configuration"
                            );
                            state.adopt(live);
                            state.health().reconcile(&state.desired());
                            // Health may already hold servers down: push the effective view.
                            if let Err(e) = state.repush().await {
                                tracing::warn!(error = %e, "pushing the configuration");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "reading the running configuration"),
                    }
                } else {
                    tracing::info!("dataplane restarted: pushing the desired configuration");
                    if let Err(e) = state.repush().await {
                        tracing::warn!(error = %e, "re-pushing the configuration");
                    }
                }
            }
        })
    };
    tokio::spawn(watcher);

    // Health transitions change the effective configuration.
    if let Some(h) = &health.0 {
        let mut changes = h.changes();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if let Err(e) = state.repush().await {
                    tracing::warn!(error = %e, "pushing a health change");
                }
            }
        });
    }

    let metrics: MetricsRenderer = Arc::new(rvs_control::metrics::render);
    let router = server::router(Arc::clone(&state), metrics);
    server::serve(listener, router, shutdown_signal())
        .await
        .map_err(|e| format!("serving the API: {e}"))?;
    tracing::info!("rvs-control stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
}
