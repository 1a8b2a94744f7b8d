//! The handlers, one per route of the resource table in [`crate::api`], each documented for
//! the OpenAPI document with `#[utoipa::path]`.

use std::net::{Ipv4Addr, SocketAddrV4};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rvs_config::{FwmarkRule, Profile, Server, Service, ServiceKey, Timeouts};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{ApiError, BodyAt, Ctx};
use crate::api::{ConnPage, ErrorBody, HealthView, Healthz, LocalAddress, ServiceId, StatsView};

/// Default and largest page of `GET /api/v1/connections`.
pub(crate) const DEFAULT_CONN_LIMIT: u32 = 1000;
/// Largest page of `GET /api/v1/connections`.
pub(crate) const MAX_CONN_LIMIT: u32 = 10_000;

/// Every documented route.
pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(list_services, create_service, clear_services))
        .routes(routes!(get_service, edit_service, delete_service))
        .routes(routes!(list_servers, add_server))
        .routes(routes!(get_server, edit_server, delete_server))
        .routes(routes!(list_local_addresses, add_local_address))
        .routes(routes!(delete_local_address))
        .routes(routes!(get_fwmarks, put_fwmarks))
        .routes(routes!(get_timeouts, put_timeouts))
        .routes(routes!(list_connections))
        .routes(routes!(get_stats))
        .routes(routes!(zero_stats))
        .routes(routes!(get_health))
        .routes(routes!(get_config, put_config))
        .routes(routes!(get_openapi))
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

type ApiResult<T> = Result<T, ApiError>;

// ---- parameters ---------------------------------------------------------------------------

/// The `{id}` path parameter.
fn service_param(raw: &str) -> ApiResult<ServiceKey> {
    raw.parse::<ServiceId>()
        .map(|id| id.0)
        .map_err(|e| ApiError::bad_request(e, Some("id")))
}

/// The `{server}` path parameter: `address:port`, or `address` alone for the service port.
fn server_param(raw: &str) -> ApiResult<(Ipv4Addr, u16)> {
    if let Ok(sa) = raw.parse::<SocketAddrV4>() {
        return Ok((*sa.ip(), sa.port()));
    }
    if let Ok(ip) = raw.parse::<Ipv4Addr>() {
        return Ok((ip, 0));
    }
    Err(ApiError::bad_request(
        format!("server `{raw}` is not an IPv4 `address:port`"),
        Some("server"),
    ))
}

/// The `{ip}` path parameter.
fn ip_param(raw: &str) -> ApiResult<Ipv4Addr> {
    raw.parse::<Ipv4Addr>()
        .map_err(|_| ApiError::bad_request(format!("`{raw}` is not an IPv4 address"), Some("ip")))
}

/// The service id as the URL spells it.
fn wire(key: ServiceKey) -> String {
    ServiceId(key).to_string()
}

// ---- lookups ------------------------------------------------------------------------------

fn find_service(p: &Profile, key: ServiceKey) -> ApiResult<usize> {
    p.services
        .iter()
        .position(|s| s.key() == key)
        .ok_or_else(|| ApiError::not_found(format!("service {} does not exist", wire(key))))
}

/// The port a server of `s` gets for `port` 0 (as `Profile::normalize` does).
fn server_port(s: &Service, port: u16) -> u16 {
    if port != 0 || s.fwmark.is_some() {
        port
    } else {
        s.port.unwrap_or(0)
    }
}

fn find_server(s: &Service, (addr, port): (Ipv4Addr, u16)) -> ApiResult<usize> {
    let port = server_port(s, port);
    s.servers
        .iter()
        .position(|r| r.address == addr && r.port == port)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "server {addr}:{port} does not exist in service {}",
                wire(s.key())
            ))
        })
}

/// The service after a change (it was validated, so it is there).
fn service_in(p: &Profile, key: ServiceKey) -> ApiResult<Service> {
    let i = find_service(p, key)?;
    Ok(p.services[i].clone())
}

// ---- services -----------------------------------------------------------------------------

/// List the virtual services (`ipvsadm -L`), as configured.
#[utoipa::path(get, path = "/api/v1/services", tag = "services",
    responses((status = 200, description = "Every service, in configuration order", body = [Service])))]
async fn list_services(State(ctx): State<Ctx>) -> Json<Vec<Service>> {
    Json(ctx.core.desired().services)
}

/// Add a virtual service (`ipvsadm -A`).
#[utoipa::path(post, path = "/api/v1/services", tag = "services",
    request_body = Service,
    responses(
        (status = 201, description = "Created; the service as configured (defaults filled in)", body = Service),
        (status = 409, description = "The service exists", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn create_service(
    State(ctx): State<Ctx>,
    ApiJson(service): ApiJson<Service>,
) -> ApiResult<Response> {
    let key = service.key();
    // An incomplete identity is the validator's to report, not a clash with a default key.
    let complete = service.fwmark.is_some()
        || (service.vip.is_some() && service.port.is_some() && service.protocol.is_some());
    let desired = ctx
        .change(move |p| {
            if complete && p.services.iter().any(|s| s.key() == key) {
                return Err(ApiError::conflict(format!(
                    "service {} already exists",
                    wire(key)
                )));
            }
            p.services.push(service);
            Ok(BodyAt::at(format!("services[{}]", p.services.len() - 1)))
        })
        .await?;
    let service = service_in(&desired, key)?;
    Ok(created(format!("/api/v1/services/{}", wire(key)), service))
}

/// Remove every service (`ipvsadm -C`).
#[utoipa::path(delete, path = "/api/v1/services", tag = "services",
    responses(
        (status = 204, description = "Every service removed"),
        (status = 422, description = "The dataplane rejected the configuration", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn clear_services(State(ctx): State<Ctx>) -> ApiResult<StatusCode> {
    ctx.change(|p| {
        p.services.clear();
        Ok(BodyAt::root())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One virtual service.
#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service id: `tcp:VIP:PORT`, `udp:VIP:PORT` or `fwmark:MARK`", example = "tcp:10.0.0.100:80")),
    responses(
        (status = 200, description = "The service as configured", body = Service),
        (status = 404, description = "No such service", body = ErrorBody)))]
async fn get_service(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Service>> {
    let key = service_param(&id)?;
    service_in(&ctx.core.desired(), key).map(Json)
}

/// Which identity key of `body` disagrees with the service named in the URL.
fn identity_mismatch(body: &Service, key: ServiceKey) -> Option<&'static str> {
    match key {
        ServiceKey::Fwmark(m) => (body.fwmark != Some(m)).then_some("fwmark"),
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => {
            if body.fwmark.is_some() {
                Some("fwmark")
            } else if body.protocol != Some(protocol) {
                Some("protocol")
            } else if body.vip != Some(vip) {
                Some("vip")
            } else if body.port != Some(port) {
                Some("port")
            } else {
                None
            }
        }
    }
}

/// Replace a virtual service, servers included (`ipvsadm -E`). The body may omit the
/// identity keys (`vip`/`port`/`protocol` or `fwmark`); given, they must match the URL.
#[utoipa::path(put, path = "/api/v1/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80")),
    request_body = Service,
    responses(
        (status = 200, description = "The service as now configured", body = Service),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid, the identity differs from the URL, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn edit_service(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut service): ApiJson<Service>,
) -> ApiResult<Json<Service>> {
    let key = service_param(&id)?;
    if service.vip.is_none()
        && service.port.is_none()
        && service.protocol.is_none()
        && service.fwmark.is_none()
    {
        match key {
            ServiceKey::Fwmark(m) => service.fwmark = Some(m),
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => {
                service.protocol = Some(protocol);
                service.vip = Some(vip);
                service.port = Some(port);
            }
        }
    }
    let desired = ctx
        .change(move |p| {
            let i = find_service(p, key)?;
            if let Some(field) = identity_mismatch(&service, key) {
                return Err(ApiError::invalid(
                    format!(
                        "`{field}` must match the service in the URL ({}); a service's identity cannot change (delete it and add a new one)",
                        wire(key)
                    ),
                    Some(field.to_owned()),
                ));
            }
            p.services[i] = service;
            Ok(BodyAt::at(format!("services[{i}]")))
        })
        .await?;
    service_in(&desired, key).map(Json)
}

/// Remove a virtual service (`ipvsadm -D`).
#[utoipa::path(delete, path = "/api/v1/services/{id}", tag = "services",
    params(("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn delete_service(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let key = service_param(&id)?;
    ctx.change(move |p| {
        let i = find_service(p, key)?;
        p.services.remove(i);
        Ok(BodyAt::root())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- real servers -------------------------------------------------------------------------

/// The real servers of a service.
#[utoipa::path(get, path = "/api/v1/services/{id}/servers", tag = "servers",
    params(("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80")),
    responses(
        (status = 200, description = "Its servers, in list order", body = [Server]),
        (status = 404, description = "No such service", body = ErrorBody)))]
async fn list_servers(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<Server>>> {
    let key = service_param(&id)?;
    service_in(&ctx.core.desired(), key).map(|s| Json(s.servers))
}

/// Add a real server to a service (`ipvsadm -a`).
#[utoipa::path(post, path = "/api/v1/services/{id}/servers", tag = "servers",
    params(("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80")),
    request_body = Server,
    responses(
        (status = 201, description = "Created; the server as configured", body = Server),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "The server exists in the service", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn add_server(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut server): ApiJson<Server>,
) -> ApiResult<Response> {
    let key = service_param(&id)?;
    let desired = ctx
        .change(move |p| {
            let i = find_service(p, key)?;
            let s = &mut p.services[i];
            server.port = server_port(s, server.port);
            if s.servers
                .iter()
                .any(|r| r.address == server.address && r.port == server.port)
            {
                return Err(ApiError::conflict(format!(
                    "server {}:{} already exists in service {}",
                    server.address,
                    server.port,
                    wire(key)
                )));
            }
            s.servers.push(server);
            Ok(BodyAt::at(format!(
                "services[{i}].servers[{}]",
                s.servers.len() - 1
            )))
        })
        .await?;
    let s = service_in(&desired, key)?;
    let j = find_server(&s, (server.address, server.port))?;
    let server = s.servers[j];
    Ok(created(
        format!(
            "/api/v1/services/{}/servers/{}:{}",
            wire(key),
            server.address,
            server.port
        ),
        server,
    ))
}

const SERVER_PARAM: &str = "Real server `address:port` (`address` alone means the service port)";

/// One real server of a service.
#[utoipa::path(get, path = "/api/v1/services/{id}/servers/{server}", tag = "servers",
    params(
        ("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80"),
        ("server" = String, Path, description = SERVER_PARAM, example = "10.0.0.11:80")),
    responses(
        (status = 200, description = "The server as configured", body = Server),
        (status = 404, description = "No such service or server", body = ErrorBody)))]
async fn get_server(
    State(ctx): State<Ctx>,
    ApiPath((id, server)): ApiPath<(String, String)>,
) -> ApiResult<Json<Server>> {
    let key = service_param(&id)?;
    let at = server_param(&server)?;
    let s = service_in(&ctx.core.desired(), key)?;
    let j = find_server(&s, at)?;
    Ok(Json(s.servers[j]))
}

/// Edit a real server (`ipvsadm -e`): weight, forwarding mode, thresholds. Its address and
/// port must match the URL.
#[utoipa::path(put, path = "/api/v1/services/{id}/servers/{server}", tag = "servers",
    params(
        ("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80"),
        ("server" = String, Path, description = SERVER_PARAM, example = "10.0.0.11:80")),
    request_body = Server,
    responses(
        (status = 200, description = "The server as now configured", body = Server),
        (status = 404, description = "No such service or server", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid, the address differs from the URL, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn edit_server(
    State(ctx): State<Ctx>,
    ApiPath((id, server_id)): ApiPath<(String, String)>,
    ApiJson(mut server): ApiJson<Server>,
) -> ApiResult<Json<Server>> {
    let key = service_param(&id)?;
    let at = server_param(&server_id)?;
    let desired = ctx
        .change(move |p| {
            let i = find_service(p, key)?;
            let s = &mut p.services[i];
            let j = find_server(s, at)?;
            server.port = server_port(s, server.port);
            let current = s.servers[j];
            for (field, same) in [
                ("address", server.address == current.address),
                ("port", server.port == current.port),
            ] {
                if !same {
                    return Err(ApiError::invalid(
                        format!(
                            "`{field}` must match the server in the URL ({}:{}); delete the server and add a new one instead",
                            current.address, current.port
                        ),
                        Some(field.to_owned()),
                    ));
                }
            }
            s.servers[j] = server;
            Ok(BodyAt::at(format!("services[{i}].servers[{j}]")))
        })
        .await?;
    let s = service_in(&desired, key)?;
    let j = find_server(&s, (server.address, server.port))?;
    Ok(Json(s.servers[j]))
}

/// Remove a real server (`ipvsadm -d`).
#[utoipa::path(delete, path = "/api/v1/services/{id}/servers/{server}", tag = "servers",
    params(
        ("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80"),
        ("server" = String, Path, description = SERVER_PARAM, example = "10.0.0.11:80")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such service or server", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn delete_server(
    State(ctx): State<Ctx>,
    ApiPath((id, server)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let key = service_param(&id)?;
    let at = server_param(&server)?;
    ctx.change(move |p| {
        let i = find_service(p, key)?;
        let j = find_server(&p.services[i], at)?;
        p.services[i].servers.remove(j);
        Ok(BodyAt::root())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- local addresses ----------------------------------------------------------------------

/// The FullNAT local addresses (LIPs) of a service.
#[utoipa::path(get, path = "/api/v1/services/{id}/local-addresses", tag = "local-addresses",
    params(("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80")),
    responses(
        (status = 200, description = "Its local addresses", body = [String], example = json!(["10.0.1.10"])),
        (status = 404, description = "No such service", body = ErrorBody)))]
async fn list_local_addresses(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<String>>> {
    let key = service_param(&id)?;
    let s = service_in(&ctx.core.desired(), key)?;
    Ok(Json(
        s.local_addresses.iter().map(|a| a.to_string()).collect(),
    ))
}

/// Add a FullNAT local address to a service (`ipvsadm --add-laddr`).
#[utoipa::path(post, path = "/api/v1/services/{id}/local-addresses", tag = "local-addresses",
    params(("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80")),
    request_body = LocalAddress,
    responses(
        (status = 201, description = "Added", body = LocalAddress),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "The service has this local address", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn add_local_address(
    State(ctx): State<Ctx>,
    ApiPath(id): ApiPath<String>,
    ApiJson(lip): ApiJson<LocalAddress>,
) -> ApiResult<Response> {
    let key = service_param(&id)?;
    let address = lip.address;
    ctx.change(move |p| {
        let i = find_service(p, key)?;
        let s = &mut p.services[i];
        if s.local_addresses.contains(&address) {
            return Err(ApiError::conflict(format!(
                "local address {address} already exists in service {}",
                wire(key)
            )));
        }
        s.local_addresses.push(address);
        Ok(BodyAt::value(
            format!(
                "services[{i}].local_addresses[{}]",
                s.local_addresses.len() - 1
            ),
            "address",
        ))
    })
    .await?;
    Ok(created(
        format!("/api/v1/services/{}/local-addresses/{address}", wire(key)),
        lip,
    ))
}

/// Remove a FullNAT local address (`ipvsadm --del-laddr`).
#[utoipa::path(delete, path = "/api/v1/services/{id}/local-addresses/{ip}", tag = "local-addresses",
    params(
        ("id" = String, Path, description = "Service id", example = "tcp:10.0.0.100:80"),
        ("ip" = String, Path, description = "The local address", example = "10.0.1.10")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such service or local address", body = ErrorBody),
        (status = 422, description = "The configuration would be invalid (fnat servers need a local address), or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn delete_local_address(
    State(ctx): State<Ctx>,
    ApiPath((id, ip)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let key = service_param(&id)?;
    let address = ip_param(&ip)?;
    ctx.change(move |p| {
        let i = find_service(p, key)?;
        let s = &mut p.services[i];
        let k = s
            .local_addresses
            .iter()
            .position(|a| *a == address)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "local address {address} does not exist in service {}",
                    wire(key)
                ))
            })?;
        s.local_addresses.remove(k);
        Ok(BodyAt::root())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- firewall marks and timeouts ----------------------------------------------------------

/// The firewall-mark rules.
#[utoipa::path(get, path = "/api/v1/fwmarks", tag = "fwmarks",
    responses((status = 200, description = "Every rule", body = [FwmarkRule])))]
async fn get_fwmarks(State(ctx): State<Ctx>) -> Json<Vec<FwmarkRule>> {
    Json(ctx.core.desired().fwmarks)
}

/// Replace the firewall-mark rules (the whole list).
#[utoipa::path(put, path = "/api/v1/fwmarks", tag = "fwmarks",
    request_body = [FwmarkRule],
    responses(
        (status = 200, description = "The rules now in force", body = [FwmarkRule]),
        (status = 422, description = "The configuration would be invalid (e.g. a service uses a removed mark), or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn put_fwmarks(
    State(ctx): State<Ctx>,
    ApiJson(rules): ApiJson<Vec<FwmarkRule>>,
) -> ApiResult<Json<Vec<FwmarkRule>>> {
    let desired = ctx
        .change(move |p| {
            p.fwmarks = rules;
            Ok(BodyAt::at("fwmarks"))
        })
        .await?;
    Ok(Json(desired.fwmarks))
}

/// The connection timeouts (`ipvsadm -L --timeout`).
#[utoipa::path(get, path = "/api/v1/timeouts", tag = "timeouts",
    responses((status = 200, description = "Timeouts in seconds", body = Timeouts)))]
async fn get_timeouts(State(ctx): State<Ctx>) -> Json<Timeouts> {
    Json(ctx.core.desired().timeouts)
}

/// Body of `PUT /api/v1/timeouts`: a field that is 0 or absent keeps its current value, as
/// `ipvsadm --set` does.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeoutsUpdate {
    /// TCP ESTABLISHED, seconds.
    #[serde(default)]
    tcp: Option<u32>,
    /// TCP FIN_WAIT, seconds.
    #[serde(default)]
    tcp_fin: Option<u32>,
    /// UDP, seconds.
    #[serde(default)]
    udp: Option<u32>,
}

/// Set the connection timeouts (`ipvsadm --set tcp tcpfin udp`); 0 or absent keeps a value.
#[utoipa::path(put, path = "/api/v1/timeouts", tag = "timeouts",
    request_body = TimeoutsUpdate,
    responses(
        (status = 200, description = "The timeouts now in force", body = Timeouts),
        (status = 422, description = "A timeout is out of range, or the dataplane rejected it", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn put_timeouts(
    State(ctx): State<Ctx>,
    ApiJson(update): ApiJson<TimeoutsUpdate>,
) -> ApiResult<Json<Timeouts>> {
    let desired = ctx
        .change(move |p| {
            let t = &mut p.timeouts;
            for (slot, new) in [
                (&mut t.tcp, update.tcp),
                (&mut t.tcp_fin, update.tcp_fin),
                (&mut t.udp, update.udp),
            ] {
                if let Some(v) = new.filter(|v| *v != 0) {
                    *slot = v;
                }
            }
            Ok(BodyAt::at("timeouts"))
        })
        .await?;
    Ok(Json(desired.timeouts))
}

// ---- live views ---------------------------------------------------------------------------

/// One page of tracked connections (`ipvsadm -L -c`).
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections",
    params(
        ("offset" = Option<u64>, Query, description = "Entries to skip (default 0)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1..=10000 (default 1000)", minimum = 1, maximum = 10000),
        ("templates" = Option<bool>, Query, description = "Include persistence templates (default false)")),
    responses(
        (status = 200, description = "The page", body = ConnPage),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn list_connections(State(ctx): State<Ctx>, query: ApiQuery) -> ApiResult<Json<ConnPage>> {
    let offset = query.get("offset", 0u64, |s| {
        s.parse()
            .map_err(|_| format!("offset `{s}` is not a non-negative integer"))
    })?;
    let limit = query.get("limit", DEFAULT_CONN_LIMIT, |s| match s.parse::<u64>() {
        Ok(n) if (1..=u64::from(MAX_CONN_LIMIT)).contains(&n) => {
            u32::try_from(n).map_err(|_| String::new())
        }
        _ => Err(format!("limit `{s}` is not in 1..={MAX_CONN_LIMIT}")),
    })?;
    let templates = query.get("templates", false, parse_bool)?;
    let page = ctx.core.connections(offset, limit, templates).await?;
    Ok(Json(page))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("`{s}` is not `true` or `false`")),
    }
}

/// Counters, rates, effective weights and connection counts (`ipvsadm -L --stats/--rate`).
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats",
    responses((status = 200, description = "Live view of every service", body = StatsView)))]
async fn get_stats(State(ctx): State<Ctx>) -> Json<StatsView> {
    let desired = ctx.core.desired();
    Json(ctx.core.stats(&desired))
}

/// Zero the counters of one service, or of everything (`ipvsadm -Z`).
#[utoipa::path(post, path = "/api/v1/stats/zero", tag = "stats",
    params(("service" = Option<String>, Query, description = "Service id; every service when absent", example = "tcp:10.0.0.100:80")),
    responses(
        (status = 204, description = "Zeroed"),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn zero_stats(State(ctx): State<Ctx>, query: ApiQuery) -> ApiResult<StatusCode> {
    let service = query.get("service", None, |s| {
        s.parse::<ServiceId>().map(|id| Some(id.0))
    })?;
    if let Some(key) = service {
        find_service(&ctx.core.desired(), key)?;
    }
    ctx.core.zero(service).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Health-check state of every checked service.
#[utoipa::path(get, path = "/api/v1/health", tag = "health",
    responses((status = 200, description = "One entry per checked service", body = [HealthView])))]
async fn get_health(State(ctx): State<Ctx>) -> Json<Vec<HealthView>> {
    Json(ctx.core.health_views())
}

// ---- whole configuration ------------------------------------------------------------------

/// The whole desired configuration, in the profile's schema.
#[utoipa::path(get, path = "/api/v1/config", tag = "config",
    responses((status = 200, description = "The configuration", body = Profile)))]
async fn get_config(State(ctx): State<Ctx>) -> Json<Profile> {
    Json(ctx.core.desired())
}

/// Replace services, firewall marks and timeouts atomically. `dataplane`, `ports`, `routes`
/// and `control` must equal the running ones (changing them needs a dataplane restart).
#[utoipa::path(put, path = "/api/v1/config", tag = "config",
    request_body = Profile,
    responses(
        (status = 200, description = "The configuration now in force", body = Profile),
        (status = 422, description = "Invalid, changes a boot-only section, or rejected by the dataplane", body = ErrorBody),
        (status = 503, description = "The dataplane is unavailable", body = ErrorBody)))]
async fn put_config(
    State(ctx): State<Ctx>,
    ApiJson(profile): ApiJson<Profile>,
) -> ApiResult<Json<Profile>> {
    let desired = ctx
        .change(move |p| {
            for (field, same) in [
                ("dataplane", profile.dataplane == p.dataplane),
                ("ports", profile.ports == p.ports),
                ("routes", profile.routes == p.routes),
                ("control", profile.control == p.control),
            ] {
                if !same {
                    return Err(ApiError::invalid(
                        format!(
                            "`{field}` differs from the running configuration; changing it needs a dataplane restart (edit the profile and restart)"
                        ),
                        Some(field.to_owned()),
                    ));
                }
            }
            p.services = profile.services;
            p.fwmarks = profile.fwmarks;
            p.timeouts = profile.timeouts;
            Ok(BodyAt::root())
        })
        .await?;
    Ok(Json(desired))
}

// ---- meta ---------------------------------------------------------------------------------

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json")))]
async fn get_openapi(State(ctx): State<Ctx>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ctx.doc.as_ref().clone(),
    )
        .into_response()
}

/// Liveness of both processes and the ring link; 503 when not `ok`.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses(
        (status = 200, description = "Everything is up", body = Healthz),
        (status = 503, description = "Degraded (the body says what is down)", body = Healthz)))]
async fn healthz(State(ctx): State<Ctx>) -> (StatusCode, Json<Healthz>) {
    let h = ctx.core.healthz();
    let status = if h.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h))
}

/// Content type of Prometheus' text exposition format.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(ctx): State<Ctx>) -> Response {
    let desired = ctx.core.desired();
    let stats = ctx.core.stats(&desired);
    let health = ctx.core.health_views();
    let healthz = ctx.core.healthz();
    let text = (ctx.metrics)(&stats, &health, &healthz);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROMETHEUS_TEXT),
        )],
        text,
    )
        .into_response()
}

/// Unknown routes.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

/// Known routes, wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this resource",
        None,
    )
}

/// A 201 with its `Location`.
fn created(location: String, body: impl serde::Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
