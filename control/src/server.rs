//! The REST API (`/api/v1`, `/healthz`, `/metrics`) over a [`Backend`], with axum.
//!
//! The server keeps the operator's *desired* configuration (a whole [`Profile`]). Every change
//! is made on a copy, normalized and validated in full, turned into the *effective*
//! configuration by the [`HealthSource`] (quiesced or removed servers, sorry servers) and given
//! to the dataplane with one [`Backend::apply`]; only when the dataplane accepts it does the
//! copy become the desired configuration. Changes are serialized, so the dataplane receives
//! one whole configuration per change and nothing is ever half-applied. A change runs to its
//! end even when the client goes away mid-request.
//!
//! Answers are JSON; every error is an [`ErrorBody`] naming the field at fault, relative to the
//! request body when the fault lies inside it (`servers[0].weight` for a POSTed service):
//!
//! | status | when |
//! |---|---|
//! | 400 | malformed JSON, wrong types, unknown fields; a path or query parameter that does not parse |
//! | 401 | a token is configured and the request lacks `Authorization: Bearer <token>` |
//! | 403 | no token is configured and the peer is not on loopback |
//! | 404 | unknown route, service, server or local address |
//! | 405 | wrong method |
//! | 409 | the service, server or local address already exists |
//! | 413 / 415 | body too large / not `Content-Type: application/json` |
//! | 422 | the resulting configuration is invalid, or the dataplane rejected it |
//! | 503 | the dataplane is unavailable |
//!
//! Serving: the loopback rule needs the peer address, so the router must be served with
//! `into_make_service_with_connect_info::<SocketAddr>()`, which [`serve`] does:
//!
//! ```no_run
//! # async fn run(profile: rvs_config::Profile, backend: impl rvs_control::backend::Backend,
//! #              metrics: rvs_control::server::MetricsRenderer) -> std::io::Result<()> {
//! use rvs_control::server::{AppState, NoHealth, router, serve};
//!
//! let listen = profile.control.listen;
//! let state = AppState::new(profile, backend, NoHealth, None);
//! let app = router(state.clone(), metrics);
//! let listener = tokio::net::TcpListener::bind(listen).await?;
//! serve(listener, app, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! A request that arrives without the peer address (`ConnectInfo` missing) is refused when no
//! token is configured.

mod auth;
mod doc;
mod error;
mod extract;
mod handlers;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use rvs_config::{Profile, ServiceKey};

use crate::api::{ConnPage, HealthView, Healthz, StatsView};
use crate::backend::{Backend, BackendError};

pub(crate) use error::ApiError;

/// Renders `/metrics` (Prometheus text format) from the live views.
pub type MetricsRenderer = Arc<dyn Fn(&StatsView, &[HealthView], &Healthz) -> String + Send + Sync>;

/// What the health checker contributes to the server.
pub trait HealthSource: Send + Sync + 'static {
    /// The configuration to push given the health state: failed servers quiesced (weight 0) or
    /// removed, the sorry server standing in where no server is alive.
    fn effective(&self, desired: &Profile) -> Profile;
    /// The desired configuration changed (and the dataplane accepted it): adjust the checks.
    fn reconcile(&self, desired: &Profile);
    /// Health state of every checked service.
    fn views(&self) -> Vec<HealthView>;
}

/// No health checking: the effective configuration is the desired one and there are no views.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHealth;

impl HealthSource for NoHealth {
    fn effective(&self, desired: &Profile) -> Profile {
        desired.clone()
    }

    fn reconcile(&self, _desired: &Profile) {}

    fn views(&self) -> Vec<HealthView> {
        Vec::new()
    }
}

/// The server's state: the desired configuration, the dataplane, the health checker and the
/// bearer token.
pub struct AppState<B: Backend, H: HealthSource> {
    /// The operator's configuration; replaced only after the dataplane accepted a change.
    desired: parking_lot::RwLock<Profile>,
    /// Serializes changes (held across `Backend::apply`).
    writer: tokio::sync::Mutex<()>,
    backend: B,
    health: H,
    token: Option<String>,
}

impl<B: Backend, H: HealthSource> fmt::Debug for AppState<B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("services", &self.desired.read().services.len())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl<B: Backend, H: HealthSource> AppState<B, H> {
    /// State serving `desired` (a validated profile, normally the one the dataplane booted
    /// with). With a token, every request needs `Authorization: Bearer <token>`; without one
    /// (or with an empty one) only loopback peers are served. Surrounding whitespace of the
    /// token (a token file's newline) is ignored.
    pub fn new(desired: Profile, backend: B, health: H, token: Option<String>) -> Arc<Self> {
        let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        Arc::new(AppState {
            desired: parking_lot::RwLock::new(desired),
            writer: tokio::sync::Mutex::new(()),
            backend,
            health,
            token,
        })
    }

    /// Sends the effective form of the desired configuration again (the health state changed,
    /// or the dataplane restarted). Returns the generation the dataplane now runs.
    pub async fn repush(&self) -> Result<u64, BackendError> {
        let _writer = self.writer.lock().await;
        let desired = self.desired.read().clone();
        let effective = self.health.effective(&desired);
        self.backend.apply(effective, desired).await
    }

    /// Takes `desired` as the desired configuration without pushing it (a freshly started
    /// control process adopting what the dataplane already runs).
    pub fn adopt(&self, desired: Profile) {
        *self.desired.write() = desired;
    }

    /// The desired configuration.
    pub fn desired(&self) -> Profile {
        self.desired.read().clone()
    }

    /// The dataplane link.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The health checker.
    pub fn health(&self) -> &H {
        &self.health
    }

    /// One change: applied to a copy of the desired configuration, validated in full, pushed
    /// whole, and only then made the desired configuration.
    async fn commit(&self, change: Change) -> Result<Profile, ApiError> {
        let _writer = self.writer.lock().await;
        let mut next = self.desired.read().clone();
        let body = change(&mut next)?;
        next.normalize();
        if let Err(e) = next.validate() {
            return Err(ApiError::invalid(e.message, body.relative(&e.path)));
        }
        let effective = self.health.effective(&next);
        let generation = self.backend.apply(effective, next.clone()).await?;
        *self.desired.write() = next.clone();
        self.health.reconcile(&next);
        tracing::info!(generation, "configuration applied");
        Ok(next)
    }
}

/// A boxed future (the object-safe face of the server state).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A change to the desired configuration; it says where the request body landed in it.
pub(crate) type Change = Box<dyn FnOnce(&mut Profile) -> Result<BodyAt, ApiError> + Send>;

/// Where a request body sits in the profile, to report validation errors relative to it.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyAt {
    /// Key path of the body in the profile (`services[3]`); empty = the body is the profile.
    prefix: String,
    /// Field to name when the error is about the body's node itself (e.g. `address` for a
    /// local address, which is a bare string in the profile).
    whole: Option<&'static str>,
}

impl BodyAt {
    /// The body is the whole profile, or touches no single place (a deletion).
    pub(crate) fn root() -> Self {
        BodyAt::default()
    }

    /// The body sits at `prefix`.
    pub(crate) fn at(prefix: impl Into<String>) -> Self {
        BodyAt {
            prefix: prefix.into(),
            whole: None,
        }
    }

    /// The body is the value at `prefix`, called `field` in the body.
    pub(crate) fn value(prefix: impl Into<String>, field: &'static str) -> Self {
        BodyAt {
            prefix: prefix.into(),
            whole: Some(field),
        }
    }

    /// The error path as the client should see it: relative to the body when inside it.
    pub(crate) fn relative(&self, path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        if self.prefix.is_empty() {
            return Some(path.to_owned());
        }
        if path == self.prefix {
            return self.whole.map(str::to_owned);
        }
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) if rest.starts_with('.') => Some(rest[1..].to_owned()),
            Some(rest) if rest.starts_with('[') => Some(rest.to_owned()),
            _ => Some(path.to_owned()),
        }
    }
}

/// The server state as the handlers see it, without the type parameters (handlers are plain
/// functions so `#[utoipa::path]` can document them).
pub(crate) trait Core: Send + Sync + 'static {
    fn desired(&self) -> Profile;
    fn token(&self) -> Option<&str>;
    fn change(self: Arc<Self>, change: Change) -> BoxFuture<'static, Result<Profile, ApiError>>;
    fn connections(
        &self,
        offset: u64,
        limit: u32,
        templates: bool,
    ) -> BoxFuture<'_, Result<ConnPage, BackendError>>;
    fn zero(&self, service: Option<ServiceKey>) -> BoxFuture<'_, Result<(), BackendError>>;
    fn stats(&self, desired: &Profile) -> StatsView;
    fn healthz(&self) -> Healthz;
    fn health_views(&self) -> Vec<HealthView>;
}

impl<B: Backend, H: HealthSource> Core for AppState<B, H> {
    fn desired(&self) -> Profile {
        AppState::desired(self)
    }

    fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn change(self: Arc<Self>, change: Change) -> BoxFuture<'static, Result<Profile, ApiError>> {
        Box::pin(async move {
            // Run the change in its own task: a client that disconnects mid-apply must not
            // leave the dataplane with a configuration the desired state does not know.
            match tokio::spawn(async move { self.commit(change).await }).await {
                Ok(result) => result,
                Err(e) => {
                    tracing::error!("configuration change failed: {e}");
                    Err(ApiError::internal(
                        "the configuration change failed unexpectedly",
                    ))
                }
            }
        })
    }

    fn connections(
        &self,
        offset: u64,
        limit: u32,
        templates: bool,
    ) -> BoxFuture<'_, Result<ConnPage, BackendError>> {
        Box::pin(self.backend.connections(offset, limit, templates))
    }

    fn zero(&self, service: Option<ServiceKey>) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.backend.zero(service))
    }

    fn stats(&self, desired: &Profile) -> StatsView {
        self.backend.stats(desired)
    }

    fn healthz(&self) -> Healthz {
        self.backend.healthz()
    }

    fn health_views(&self) -> Vec<HealthView> {
        self.health.views()
    }
}

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) core: Arc<dyn Core>,
    pub(crate) metrics: MetricsRenderer,
    /// The OpenAPI document, serialized once.
    pub(crate) doc: Arc<String>,
}

impl Ctx {
    /// Runs one change (see [`AppState`]); returns the new desired configuration.
    pub(crate) async fn change(
        &self,
        change: impl FnOnce(&mut Profile) -> Result<BodyAt, ApiError> + Send + 'static,
    ) -> Result<Profile, ApiError> {
        Arc::clone(&self.core).change(Box::new(change)).await
    }
}

/// The whole HTTP surface: `/api/v1/…`, `/healthz`, `/metrics` and `/api/v1/openapi.json`,
/// behind the bearer-token / loopback guard, with JSON 404 and 405 answers.
///
/// Serve it with [`serve`] (or `into_make_service_with_connect_info::<SocketAddr>()`).
pub fn router<B: Backend, H: HealthSource>(
    state: Arc<AppState<B, H>>,
    metrics: MetricsRenderer,
) -> Router {
    let (routes, api) = handlers::routes().split_for_parts();
    let api = doc::finish(api);
    let doc = serde_json::to_string(&api).unwrap_or_else(|e| {
        tracing::error!("cannot serialize the OpenAPI document: {e}");
        "{}".to_owned()
    });
    let core: Arc<dyn Core> = state;
    let ctx = Ctx {
        core: Arc::clone(&core),
        metrics,
        doc: Arc::new(doc),
    };
    routes
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(ctx)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(core, auth::guard))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panicked,
        ))
}

/// Largest request body (a whole profile with many services fits).
pub const BODY_LIMIT: usize = 16 << 20;

/// The OpenAPI document of [`router`], generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    doc::finish(handlers::routes().into_openapi())
}

/// Serves `router` on `listener` until `shutdown` completes, with the peer address available
/// to the loopback rule.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::BodyAt;

    #[test]
    fn error_paths_are_relative_to_the_body() {
        let at = BodyAt::at("services[3]");
        assert_eq!(
            at.relative("services[3].servers[0].weight").as_deref(),
            Some("servers[0].weight")
        );
        assert_eq!(at.relative("services[3]"), None);
        assert_eq!(
            at.relative("services[30].vip").as_deref(),
            Some("services[30].vip")
        );
        assert_eq!(
            at.relative("services[0].vip").as_deref(),
            Some("services[0].vip")
        );
        let list = BodyAt::at("fwmarks");
        assert_eq!(
            list.relative("fwmarks[1].ports[0]").as_deref(),
            Some("[1].ports[0]")
        );
        let lip = BodyAt::value("services[0].local_addresses[2]", "address");
        assert_eq!(
            lip.relative("services[0].local_addresses[2]").as_deref(),
            Some("address")
        );
        assert_eq!(
            BodyAt::root().relative("ports[0]").as_deref(),
            Some("ports[0]")
        );
    }
}
