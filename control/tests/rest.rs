//! The REST API over an in-memory backend: routes, validation, atomicity, auth and the OpenAPI
//! document. Requests go through `tower::ServiceExt::oneshot` (no network), with the peer
//! address injected as axum's `ConnectInfo`; one test serves a real listener on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use parking_lot::Mutex;
use rvs_config::{Profile, ServiceKey};
use rvs_control::api::{
    ConnPage, HealthView, Healthz, ProcessHealth, RingHealth, ServiceId, Stats, StatsView,
};
use rvs_control::backend::{Backend, BackendError};
use rvs_control::server::{AppState, HealthSource, MetricsRenderer, NoHealth, openapi, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const PROFILE: &str = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
routes:
  - { prefix: 0.0.0.0/0, via: 10.0.0.1 }
fwmarks:
  - { mark: 8, protocol: tcp, destination: 10.0.0.200/32, ports: [80, \"8000-8100\"] }
services:
  - vip: 10.0.0.100
    port: 80
    protocol: tcp
    scheduler: wrr
    servers:
      - { address: 10.0.0.11, weight: 3 }
      - { address: 10.0.0.12 }
  - fwmark: 8
    servers:
      - { address: 10.0.0.13 }
";

fn profile() -> Profile {
    Profile::parse(PROFILE, "test.yaml").expect("the test profile is valid")
}

/// What the in-memory backend does with the next `apply`.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Accept,
    Reject,
    Unavailable,
}

#[derive(Debug)]
struct Inner {
    applied: Mutex<Vec<Profile>>,
    zeroed: Mutex<Vec<Option<ServiceKey>>>,
    connections: Mutex<Vec<(u64, u32, bool)>>,
    mode: Mutex<Mode>,
    status: Mutex<String>,
    generation: AtomicU64,
}

/// An in-memory dataplane: records every configuration it is given.
#[derive(Debug, Clone)]
struct Mem(Arc<Inner>);

impl Mem {
    fn new() -> Self {
        Mem(Arc::new(Inner {
            applied: Mutex::new(Vec::new()),
            zeroed: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
            mode: Mutex::new(Mode::Accept),
            status: Mutex::new("ok".to_owned()),
            generation: AtomicU64::new(1),
        }))
    }

    fn applied(&self) -> Vec<Profile> {
        self.0.applied.lock().clone()
    }

    fn set_mode(&self, mode: Mode) {
        *self.0.mode.lock() = mode;
    }
}

impl Backend for Mem {
    async fn apply(&self, config: Profile, _desired: Profile) -> Result<u64, BackendError> {
        let mode = self.0.mode.lock().clone();
        match mode {
            Mode::Accept => {
                self.0.applied.lock().push(config);
                Ok(self.0.generation.fetch_add(1, Ordering::SeqCst) + 1)
            }
            Mode::Reject => Err(BackendError::Rejected {
                message: "no room for another service".to_owned(),
                field: Some("services[2]".to_owned()),
            }),
            Mode::Unavailable => Err(BackendError::Unavailable("ring timeout".to_owned())),
        }
    }

    async fn live_config(&self) -> Result<Profile, BackendError> {
        self.0
            .applied
            .lock()
            .last()
            .cloned()
            .ok_or_else(|| BackendError::Unavailable("nothing applied".to_owned()))
    }

    async fn connections(
        &self,
        offset: u64,
        limit: u32,
        templates: bool,
    ) -> Result<ConnPage, BackendError> {
        self.0.connections.lock().push((offset, limit, templates));
        Ok(ConnPage {
            items: Vec::new(),
            next_offset: None,
        })
    }

    async fn zero(&self, service: Option<ServiceKey>) -> Result<(), BackendError> {
        self.0.zeroed.lock().push(service);
        Ok(())
    }

    fn stats(&self, config: &Profile) -> StatsView {
        StatsView {
            services: Vec::new(),
            total: Stats {
                conns: config.services.len() as u64,
                ..Stats::default()
            },
            total_rates: Default::default(),
            workers: Vec::new(),
            generation: self.0.generation.load(Ordering::SeqCst),
        }
    }

    fn healthz(&self) -> Healthz {
        let process = ProcessHealth {
            up: true,
            pid: Some(1),
            heartbeat_age_ms: Some(5),
        };
        Healthz {
            status: self.0.status.lock().clone(),
            control: process.clone(),
            dataplane: process,
            ring: RingHealth {
                up: true,
                roundtrip_us: Some(10),
                generation: self.0.generation.load(Ordering::SeqCst),
                commands: 0,
                rejected: 0,
            },
        }
    }
}

fn renderer() -> MetricsRenderer {
    Arc::new(|stats: &StatsView, health: &[HealthView], hz: &Healthz| {
        format!(
            "rvs_services_total {}\nrvs_health_views {}\nrvs_up {}\n",
            stats.total.conns,
            health.len(),
            u8::from(hz.status == "ok")
        )
    })
}

struct Api<H: HealthSource = NoHealth> {
    app: Router,
    mem: Mem,
    state: Arc<AppState<Mem, H>>,
}

fn api_with(token: Option<&str>) -> Api {
    let mem = Mem::new();
    let state = AppState::new(profile(), mem.clone(), NoHealth, token.map(str::to_owned));
    let app = router(state.clone(), renderer());
    Api { app, mem, state }
}

fn api() -> Api {
    api_with(None)
}

const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 40000);

/// A request from `peer`, with a JSON body when given.
fn request(method: Method, uri: &str, body: Option<&Value>, peer: ([u8; 4], u16)) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    let body = match body {
        Some(v) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = builder.body(body).expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(peer)));
    req
}

/// Sends `req`; returns the status, headers and the body as JSON (Null when empty, a string
/// when not JSON).
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

impl<H: HealthSource> Api<H> {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, body) =
            send(&self.app, request(method, uri, body.as_ref(), LOOPBACK)).await;
        (status, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }
}

fn assert_error(body: &Value, field: Option<&str>) {
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "not an ErrorBody: {body}"
    );
    assert_eq!(body.get("field").and_then(Value::as_str), field, "{body}");
}

fn new_service() -> Value {
    json!({
        "vip": "10.0.0.101", "port": 443, "protocol": "tcp", "scheduler": "rr",
        "servers": [{"address": "10.0.0.21"}, {"address": "10.0.0.22", "weight": 5}]
    })
}

const SVC: &str = "/api/v1/services/tcp:10.0.0.100:80";

#[tokio::test]
async fn services_are_created_read_edited_and_deleted() {
    let api = api();
    let (status, body) = api.get("/api/v1/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(2));

    // -A
    let (status, headers, body) = send(
        &api.app,
        request(
            Method::POST,
            "/api/v1/services",
            Some(&new_service()),
            LOOPBACK,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        headers.get(header::LOCATION).and_then(|v| v.to_str().ok()),
        Some("/api/v1/services/tcp:10.0.0.101:443")
    );
    // Normalized: the servers got the service port and the default weight.
    assert_eq!(body["servers"][0]["port"], 443);
    assert_eq!(body["servers"][0]["weight"], 1);
    assert_eq!(api.mem.applied().len(), 1);
    assert_eq!(api.mem.applied()[0].services.len(), 3);

    let (status, body) = api.get("/api/v1/services/tcp:10.0.0.101:443").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scheduler"], "rr");

    // -E: the body may leave out the identity.
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/services/tcp:10.0.0.101:443",
            Some(json!({"scheduler": "sh", "flags": ["sh-port"], "servers": [{"address": "10.0.0.21"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scheduler"], "sh");
    assert_eq!(body["flags"], json!(["sh-port"]));
    assert_eq!(body["vip"], "10.0.0.101");
    assert_eq!(api.mem.applied().len(), 2);
    let (_, body) = api.get("/api/v1/services/tcp:10.0.0.101:443/servers").await;
    assert_eq!(body.as_array().map(Vec::len), Some(1));

    // -a, -e, -d
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/services/tcp:10.0.0.101:443/servers",
            Some(json!({"address": "10.0.0.23", "weight": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["port"], 443);
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/services/tcp:10.0.0.101:443/servers/10.0.0.23:443",
            Some(json!({"address": "10.0.0.23", "weight": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["weight"], 7);
    let (_, body) = api
        .get("/api/v1/services/tcp:10.0.0.101:443/servers/10.0.0.23:443")
        .await;
    assert_eq!(body["weight"], 7);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/api/v1/services/tcp:10.0.0.101:443/servers/10.0.0.23:443",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .get("/api/v1/services/tcp:10.0.0.101:443/servers/10.0.0.23:443")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // -D
    let (status, _) = api
        .call(Method::DELETE, "/api/v1/services/tcp:10.0.0.101:443", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get("/api/v1/services/tcp:10.0.0.101:443").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, None);
    let applied = api.mem.applied();
    assert_eq!(applied.len(), 6);
    assert_eq!(applied[5].services, profile().services);

    // -C
    let (status, _) = api.call(Method::DELETE, "/api/v1/services", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = api.get("/api/v1/services").await;
    assert_eq!(body, json!([]));
    assert!(api.state.desired().services.is_empty());
}

#[tokio::test]
async fn a_duplicate_service_is_409_and_nothing_is_applied() {
    let api = api();
    let dup = json!({"vip": "10.0.0.100", "port": 80, "protocol": "tcp", "servers": []});
    let (status, body) = api.call(Method::POST, "/api/v1/services", Some(dup)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "service tcp:10.0.0.100:80 already exists");
    assert!(api.mem.applied().is_empty());
    // Without its protocol it is not a duplicate but an incomplete service.
    let partial = json!({"vip": "10.0.0.100", "port": 80});
    let (status, body) = api
        .call(Method::POST, "/api/v1/services", Some(partial))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("protocol"));
    assert!(api.mem.applied().is_empty());
    assert_eq!(api.state.desired(), profile());
}

#[tokio::test]
async fn an_unknown_scheduler_is_400_naming_scheduler() {
    let api = api();
    let mut svc = new_service();
    svc["scheduler"] = json!("fastest");
    let (status, body) = api.call(Method::POST, "/api/v1/services", Some(svc)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("scheduler"));
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("fastest"),
        "{body}"
    );
    assert!(api.mem.applied().is_empty());
}

#[tokio::test]
async fn bad_bodies_are_json_errors_naming_the_problem() {
    let api = api();
    // Malformed JSON.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/services")
        .header(header::CONTENT_TYPE, "application/json")
        .extension(ConnectInfo(SocketAddr::from(LOOPBACK)))
        .body(Body::from("{\"vip\": \"10.0.0.101\", "))
        .expect("request");
    let (status, headers, body) = send(&api.app, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert!(
        body["error"].as_str().unwrap_or_default().contains("JSON"),
        "{body}"
    );

    // Wrong type, deep inside.
    let mut svc = new_service();
    svc["servers"][1]["weight"] = json!("heavy");
    let (status, body) = api.call(Method::POST, "/api/v1/services", Some(svc)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("servers[1].weight"));

    // Unknown field.
    let mut svc = new_service();
    svc["servers"][0]["wieght"] = json!(2);
    let (status, body) = api.call(Method::POST, "/api/v1/services", Some(svc)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("servers[0].wieght"));

    // Missing required field.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/services/fwmark:8/servers",
            Some(json!({"weight": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("address"));

    // No Content-Type.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/services")
        .extension(ConnectInfo(SocketAddr::from(LOOPBACK)))
        .body(Body::from(new_service().to_string()))
        .expect("request");
    let (status, _, body) = send(&api.app, req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&body, None);
    assert!(api.mem.applied().is_empty());
}

#[tokio::test]
async fn bad_path_parameters_are_400_naming_the_parameter() {
    let api = api();
    let (status, body) = api.get("/api/v1/services/sctp:10.0.0.100:80").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("id"));
    let (status, body) = api.get(&format!("{SVC}/servers/10.0.0.11:http")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("server"));
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("{SVC}/local-addresses/not-an-ip"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("ip"));
}

#[tokio::test]
async fn missing_things_are_404() {
    let api = api();
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/services/tcp:10.0.0.199:80/servers",
            Some(json!({"address": "10.0.0.11"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("tcp:10.0.0.199:80"),
        "{body}"
    );
    for uri in [
        "/api/v1/services/udp:10.0.0.100:80".to_owned(),
        format!("{SVC}/servers/10.0.0.99:80"),
        format!("{SVC}/local-addresses/10.0.1.10"),
    ] {
        let (status, body) = api.call(Method::DELETE, &uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_error(&body, None);
    }
    assert!(api.mem.applied().is_empty());
}

#[tokio::test]
async fn a_duplicate_server_is_409() {
    let api = api();
    // Port omitted = the service port, so this is 10.0.0.11:80 again.
    let (status, body) = api
        .call(
            Method::POST,
            &format!("{SVC}/servers"),
            Some(json!({"address": "10.0.0.11"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, None);
    assert!(api.mem.applied().is_empty());
}

#[tokio::test]
async fn a_bad_weight_in_a_posted_service_names_the_field_in_the_body() {
    let api = api();
    let mut svc = new_service();
    svc["servers"][0]["weight"] = json!(70000);
    let (status, body) = api.call(Method::POST, "/api/v1/services", Some(svc)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("servers[0].weight"));
    assert!(
        body["error"].as_str().unwrap_or_default().contains("70000"),
        "{body}"
    );

    // The same inside a server body, and a field outside the body keeps its full path.
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{SVC}/servers/10.0.0.12:80"),
            Some(json!({"address": "10.0.0.12", "upper": 10, "lower": 20})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("lower"));
    let (status, body) = api
        .call(Method::PUT, "/api/v1/fwmarks", Some(json!([])))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("services[1].fwmark"));
    assert!(api.mem.applied().is_empty());
}

#[tokio::test]
async fn a_rejecting_backend_is_422_and_the_desired_config_is_unchanged() {
    let api = api();
    api.mem.set_mode(Mode::Reject);
    let (status, body) = api
        .call(Method::POST, "/api/v1/services", Some(new_service()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no room"),
        "{body}"
    );
    assert_eq!(body["field"], "services[2]");
    let (status, body) = api.get("/api/v1/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    let (status, _) = api.get("/api/v1/services/tcp:10.0.0.101:443").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.state.desired(), profile());
}

#[tokio::test]
async fn an_unavailable_backend_is_503_and_the_desired_config_is_unchanged() {
    let api = api();
    api.mem.set_mode(Mode::Unavailable);
    let (status, body) = api
        .call(Method::DELETE, &format!("{SVC}/servers/10.0.0.11:80"), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, None);
    let (_, body) = api.get(&format!("{SVC}/servers")).await;
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    assert_eq!(api.state.desired(), profile());

    // Once it is back, the same change goes through.
    api.mem.set_mode(Mode::Accept);
    let (status, _) = api
        .call(Method::DELETE, &format!("{SVC}/servers/10.0.0.11:80"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.mem.applied().len(), 1);
}

#[tokio::test]
async fn put_config_refuses_boot_only_changes() {
    let api = api();
    let (status, mut config) = api.get("/api/v1/config").await;
    assert_eq!(status, StatusCode::OK);
    config["ports"][0]["mtu"] = json!(9000);
    let (status, body) = api.call(Method::PUT, "/api/v1/config", Some(config)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("ports"));
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("restart"),
        "{body}"
    );

    let (_, mut config) = api.get("/api/v1/config").await;
    config["dataplane"]["workers"] = json!([1, 2]);
    let (status, body) = api.call(Method::PUT, "/api/v1/config", Some(config)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("dataplane"));
    assert!(api.mem.applied().is_empty());
}

#[tokio::test]
async fn put_config_applies_one_whole_configuration() {
    let api = api();
    let (_, mut config) = api.get("/api/v1/config").await;
    // Several changes at once: a new service, a new mark, new timeouts, one service gone.
    config["services"] = json!([
        new_service(),
        {"fwmark": 9, "scheduler": "lc", "servers": [{"address": "10.0.0.13"}]}
    ]);
    config["fwmarks"] = json!([
        {"mark": 9, "protocol": "udp", "destination": "10.0.0.201/32", "ports": [53]}
    ]);
    config["timeouts"] = json!({"tcp": 600, "tcp_fin": 60, "udp": 30});
    let (status, body) = api
        .call(Method::PUT, "/api/v1/config", Some(config.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let applied = api.mem.applied();
    assert_eq!(applied.len(), 1, "one configuration per change");
    let keys: Vec<String> = applied[0]
        .service_keys()
        .map(|k| ServiceId(k).to_string())
        .collect();
    assert_eq!(keys, ["tcp:10.0.0.101:443", "fwmark:9"]);
    assert_eq!(applied[0].fwmarks.len(), 1);
    assert_eq!(applied[0].timeouts.udp, 30);
    assert_eq!(applied[0], api.state.desired());
    let (_, now) = api.get("/api/v1/config").await;
    assert_eq!(now, body);

    // An invalid whole configuration changes nothing.
    config["services"][1]["fwmark"] = json!(10);
    let (status, body) = api.call(Method::PUT, "/api/v1/config", Some(config)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("services[1].fwmark"));
    assert_eq!(api.mem.applied().len(), 1);
}

#[tokio::test]
async fn timeouts_with_zero_keep_their_values() {
    let api = api();
    let (status, body) = api.get("/api/v1/timeouts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"tcp": 900, "tcp_fin": 120, "udp": 300}));
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/timeouts",
            Some(json!({"tcp": 0, "tcp_fin": 60, "udp": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"tcp": 900, "tcp_fin": 60, "udp": 300}));
    assert_eq!(api.mem.applied()[0].timeouts.tcp_fin, 60);
    let (status, body) = api
        .call(
            Method::PUT,
            "/api/v1/timeouts",
            Some(json!({"udp": 3_000_000})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, Some("udp"));
}

#[tokio::test]
async fn connections_are_paged_with_a_bounded_limit() {
    let api = api();
    let (status, body) = api.get("/api/v1/connections").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], json!([]));
    let (status, _) = api
        .get("/api/v1/connections?offset=20&limit=10000&templates=true")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        *api.mem.0.connections.lock(),
        [(0, 1000, false), (20, 10000, true)]
    );
    let (status, body) = api.get("/api/v1/connections?limit=10001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("limit"));
    let (status, body) = api.get("/api/v1/connections?templates=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("templates"));
    assert_eq!(api.mem.0.connections.lock().len(), 2);
}

#[tokio::test]
async fn stats_zero_and_live_views() {
    let api = api();
    let (status, body) = api.get("/api/v1/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"]["conns"], 2, "stats of the desired config");
    let (status, _) = api
        .call(
            Method::POST,
            "/api/v1/stats/zero?service=tcp:10.0.0.100:80",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call(Method::POST, "/api/v1/stats/zero", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/stats/zero?service=udp:10.0.0.1:53",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, None);
    let (status, body) = api
        .call(Method::POST, "/api/v1/stats/zero?service=bogus", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("service"));
    assert_eq!(
        *api.mem.0.zeroed.lock(),
        [
            Some(
                "tcp:10.0.0.100:80"
                    .parse::<ServiceId>()
                    .map(|i| i.0)
                    .expect("id")
            ),
            None
        ]
    );

    let (status, body) = api.get("/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));

    let (status, body) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    *api.mem.0.status.lock() = "degraded".to_owned();
    let (status, body) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "degraded");

    let (status, headers, body) =
        send(&api.app, request(Method::GET, "/metrics", None, LOOPBACK)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    assert_eq!(
        body,
        Value::String("rvs_services_total 2\nrvs_health_views 0\nrvs_up 0\n".to_owned())
    );
}

#[tokio::test]
async fn local_addresses_and_fwmarks() {
    let api = api();
    let (status, body) = api
        .call(
            Method::POST,
            &format!("{SVC}/local-addresses"),
            Some(json!({"address": "10.0.0.50"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = api
        .call(
            Method::POST,
            &format!("{SVC}/local-addresses"),
            Some(json!({"address": "10.0.0.50"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A LIP that is the director's own address is refused, naming the body's field.
    let (status, body) = api
        .call(
            Method::POST,
            &format!("{SVC}/local-addresses"),
            Some(json!({"address": "10.0.0.10"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, Some("address"));
    let (_, body) = api.get(&format!("{SVC}/local-addresses")).await;
    assert_eq!(body, json!(["10.0.0.50"]));
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{SVC}/local-addresses/10.0.0.50"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.mem.applied().len(), 2);

    let (status, body) = api.get("/api/v1/fwmarks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["ports"], json!([80, "8000-8100"]));
    let rules = json!([
        {"mark": 8, "protocol": "tcp", "destination": "10.0.0.200/32", "ports": [443]}
    ]);
    let (status, body) = api
        .call(Method::PUT, "/api/v1/fwmarks", Some(rules.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, rules);
    assert_eq!(api.mem.applied().len(), 3);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let api = api();
    let (status, body) = api.get("/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, None);
    let (status, headers, body) = send(
        &api.app,
        request(Method::PATCH, "/api/v1/services", None, LOOPBACK),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, None);
    assert!(headers.contains_key(header::ALLOW), "{headers:?}");
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let api = api_with(Some("s3cret\n"));
    let far = ([192, 0, 2, 1], 5000);
    let (status, headers, body) = send(
        &api.app,
        request(Method::GET, "/api/v1/services", None, far),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, None);
    assert!(
        headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer")),
        "{headers:?}"
    );
    for auth in ["Bearer wrong", "Bearer s3cre", "Basic czNjcmV0", "s3cret"] {
        let mut req = request(Method::GET, "/api/v1/services", None, far);
        req.headers_mut()
            .insert(header::AUTHORIZATION, auth.parse().expect("header"));
        let (status, _, _) = send(&api.app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth}");
    }
    // Even loopback needs it, and so does every route.
    let (status, _, _) = send(&api.app, request(Method::GET, "/healthz", None, LOOPBACK)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut req = request(Method::POST, "/api/v1/services", Some(&new_service()), far);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        "Bearer s3cret".parse().expect("header"),
    );
    let (status, _, body) = send(&api.app, req).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(api.mem.applied().len(), 1);
}

#[tokio::test]
async fn without_a_token_only_loopback_is_served() {
    let api = api();
    let (status, _, body) = send(
        &api.app,
        request(
            Method::POST,
            "/api/v1/services",
            Some(&new_service()),
            ([10, 0, 0, 1], 5000),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, None);
    assert!(api.mem.applied().is_empty());
    // No peer address at all: refused as well.
    let req = Request::builder()
        .uri("/api/v1/services")
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = send(&api.app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 5000));
    let mut req = request(Method::GET, "/api/v1/services", None, LOOPBACK);
    req.extensions_mut().insert(ConnectInfo(v6));
    let (status, _, _) = send(&api.app, req).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn serve_passes_the_peer_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let api = api();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rvs_control::server::serve(
        listener,
        api.app.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /api/v1/timeouts HTTP/1.1\r\nHost: rvs\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"tcp_fin\":120"), "{answer}");
    let _ = stop.send(());
    server.await.expect("join").expect("serve");
}

/// Quiesces every server in what it pushes; counts reconciliations.
#[derive(Debug, Clone, Default)]
struct Quiesce {
    reconciled: Arc<Mutex<Vec<usize>>>,
}

impl HealthSource for Quiesce {
    fn effective(&self, desired: &Profile) -> Profile {
        let mut p = desired.clone();
        for s in &mut p.services {
            for r in &mut s.servers {
                r.weight = 0;
            }
        }
        p
    }

    fn reconcile(&self, desired: &Profile) {
        self.reconciled.lock().push(desired.services.len());
    }

    fn views(&self) -> Vec<HealthView> {
        vec![HealthView {
            service: "fwmark:8".parse().expect("id"),
            check: "tcp".to_owned(),
            sorry_active: false,
            servers: Vec::new(),
        }]
    }
}

#[tokio::test]
async fn the_dataplane_gets_the_effective_config_and_health_is_reconciled() {
    let mem = Mem::new();
    let health = Quiesce::default();
    let state = AppState::new(profile(), mem.clone(), health.clone(), None);
    let api = Api {
        app: router(state.clone(), renderer()),
        mem: mem.clone(),
        state,
    };
    let (status, body) = api
        .call(Method::POST, "/api/v1/services", Some(new_service()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The operator's weights stay in the desired config; the dataplane got weight 0.
    assert_eq!(body["servers"][1]["weight"], 5);
    assert_eq!(api.state.desired().services[2].servers[1].weight, 5);
    assert_eq!(api.mem.applied()[0].services[2].servers[1].weight, 0);
    assert_eq!(*health.reconciled.lock(), [3]);

    // A failed apply does not reconcile.
    mem.set_mode(Mode::Unavailable);
    let (status, _) = api.call(Method::DELETE, "/api/v1/services", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(*health.reconciled.lock(), [3]);

    // repush sends the effective config again.
    mem.set_mode(Mode::Accept);
    let generation = api.state.repush().await.expect("repush");
    assert_eq!(generation, 3);
    assert_eq!(mem.applied().len(), 2);
    assert_eq!(mem.applied()[1], mem.applied()[0]);

    let (_, body) = api.get("/api/v1/health").await;
    assert_eq!(body[0]["service"], "fwmark:8");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = api();
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc, serde_json::to_value(openapi()).expect("serializable"));
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    let expected: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("/api/v1/services", &["get", "post", "delete"][..]),
        ("/api/v1/services/{id}", &["get", "put", "delete"][..]),
        ("/api/v1/services/{id}/servers", &["get", "post"][..]),
        (
            "/api/v1/services/{id}/servers/{server}",
            &["get", "put", "delete"][..],
        ),
        (
            "/api/v1/services/{id}/local-addresses",
            &["get", "post"][..],
        ),
        (
            "/api/v1/services/{id}/local-addresses/{ip}",
            &["delete"][..],
        ),
        ("/api/v1/fwmarks", &["get", "put"][..]),
        ("/api/v1/timeouts", &["get", "put"][..]),
        ("/api/v1/connections", &["get"][..]),
        ("/api/v1/stats", &["get"][..]),
        ("/api/v1/stats/zero", &["post"][..]),
        ("/api/v1/health", &["get"][..]),
        ("/api/v1/config", &["get", "put"][..]),
        ("/api/v1/openapi.json", &["get"][..]),
        ("/healthz", &["get"][..]),
        ("/metrics", &["get"][..]),
    ]);
    for (path, methods) in &expected {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()));
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path}");
            assert!(op["responses"]["401"].is_object(), "{m} {path}: 401");
        }
    }
    assert_eq!(paths.len(), expected.len());

    let schemas = &doc["components"]["schemas"];
    for name in [
        "Service",
        "Server",
        "Profile",
        "Timeouts",
        "FwmarkRule",
        "ErrorBody",
        "StatsView",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    // Custom-serde types are described as they are on the wire.
    assert_eq!(schemas["Scheduler"]["type"], "string");
    assert!(
        schemas["Scheduler"]["enum"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("lblcr")) && e.len() == 10),
        "{}",
        schemas["Scheduler"]
    );
    assert!(
        schemas["SchedFlag"]["enum"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("sh-fallback"))),
        "{}",
        schemas["SchedFlag"]
    );
    assert_eq!(schemas["Server"]["properties"]["address"]["type"], "string");
    assert_eq!(schemas["Server"]["required"], json!(["address"]));
    // Path and query parameters and error answers.
    let get_server = &paths["/api/v1/services/{id}/servers/{server}"]["get"];
    let names: Vec<&str> = get_server["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["id", "server"]);
    let conns = &paths["/api/v1/connections"]["get"]["parameters"];
    assert_eq!(conns.as_array().map(Vec::len), Some(3));
    let post = &paths["/api/v1/services"]["post"];
    assert_eq!(
        post["responses"]["409"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(post["responses"]["400"].is_object());
    assert!(post["requestBody"]["content"]["application/json"].is_object());
}
