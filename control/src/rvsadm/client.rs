//! The REST API as rvsadm uses it: a [`Transport`] that moves one request (the HTTP one, or
//! an in-memory fake in tests) and typed helpers on top.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ErrorBody;

use super::Failure;

/// One answer: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body (JSON for the API).
    pub body: String,
}

/// Moves one request to the API. `path` starts with `/api/v1/…` (query included).
pub trait Transport {
    /// Sends `method path` with an optional JSON body. `Err` is a transport failure (the API
    /// did not answer), never an HTTP status.
    fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<Reply, String>;
}

/// The HTTP transport (ureq), with the bearer token when one is set.
#[derive(Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl HttpTransport {
    /// A transport to `base` (`http://127.0.0.1:9180`); `token` is sent as
    /// `Authorization: Bearer …`.
    pub fn new(base: &str, token: Option<String>) -> HttpTransport {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        HttpTransport {
            agent: config.into(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// The API base URL.
    pub fn base(&self) -> &str {
        &self.base
    }
}

impl Transport for HttpTransport {
    fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        macro_rules! go {
            ($builder:expr, no_body) => {{
                let mut b = $builder;
                if let Some(a) = &auth {
                    b = b.header("Authorization", a);
                }
                b.call()
            }};
            ($builder:expr, with_body) => {{
                let mut b = $builder.header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    b = b.header("Authorization", a);
                }
                match body {
                    Some(text) => b.send(text),
                    None => b.send_empty(),
                }
            }};
        }
        let result = match method {
            "GET" => go!(self.agent.get(&url), no_body),
            "DELETE" => go!(self.agent.delete(&url), no_body),
            "POST" => go!(self.agent.post(&url), with_body),
            "PUT" => go!(self.agent.put(&url), with_body),
            other => return Err(format!("unsupported method {other}")),
        };
        let mut resp = result.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok(Reply { status, body })
    }
}

/// A refused request: status and the API's one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The `error` of the [`ErrorBody`] (with its field when the message lacks it), or the
    /// body text.
    pub message: String,
}

impl ApiError {
    fn from_reply(r: &Reply) -> ApiError {
        let message = match serde_json::from_str::<ErrorBody>(&r.body) {
            Ok(e) => match e.field {
                Some(f) if !e.error.contains(&f) => format!("{f}: {}", e.error),
                _ => e.error,
            },
            Err(_) if r.body.trim().is_empty() => format!("HTTP {}", r.status),
            Err(_) => r.body.trim().lines().next().unwrap_or_default().to_owned(),
        };
        ApiError {
            status: r.status,
            message,
        }
    }

    /// The failure to report: the API's message, exit status 1.
    pub fn failure(&self) -> Failure {
        Failure::refused(self.message.clone())
    }
}

/// What a call can end in besides success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The API answered with an error status.
    Api(ApiError),
    /// The API could not be reached (or answered garbage).
    Transport(Failure),
}

impl CallError {
    /// The API's status, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Api(e) => Some(e.status),
            CallError::Transport(_) => None,
        }
    }

    /// The failure to report as is.
    pub fn failure(self) -> Failure {
        match self {
            CallError::Api(e) => e.failure(),
            CallError::Transport(f) => f,
        }
    }
}

/// Typed calls over a transport.
pub struct Client<'a> {
    transport: &'a mut dyn Transport,
    base: String,
}

impl std::fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl<'a> Client<'a> {
    /// A client; `base` only names the API in error messages.
    pub fn new(transport: &'a mut dyn Transport, base: &str) -> Client<'a> {
        Client {
            transport,
            base: base.to_owned(),
        }
    }

    fn raw(&mut self, method: &str, path: &str, body: Option<String>) -> Result<String, CallError> {
        let reply = self
            .transport
            .call(method, path, body.as_deref())
            .map_err(|e| {
                // ipvsadm: "Can't initialize ipvs: %s" (fail(2, ...)) when the kernel side is
                // missing; here the kernel side is the API.
                CallError::Transport(Failure::unreachable(format!(
                    "Can't initialize ipvs: {e} (is rvs-control listening on {}?)",
                    self.base
                )))
            })?;
        if (200..300).contains(&reply.status) {
            Ok(reply.body)
        } else {
            Err(CallError::Api(ApiError::from_reply(&reply)))
        }
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, body: &str) -> Result<T, CallError> {
        serde_json::from_str(body).map_err(|e| {
            CallError::Transport(Failure::refused(format!(
                "unexpected answer from {}{path}: {e}",
                self.base
            )))
        })
    }

    /// `GET path` → `T`.
    pub fn get<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, CallError> {
        let body = self.raw("GET", path, None)?;
        self.decode(path, &body)
    }

    /// `method path` with a JSON body; the answer is not read.
    pub fn send<B: Serialize>(
        &mut self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<(), CallError> {
        let text = serde_json::to_string(body).map_err(|e| {
            CallError::Transport(Failure::refused(format!("cannot encode request: {e}")))
        })?;
        self.raw(method, path, Some(text)).map(|_| ())
    }

    /// `method path` without a body; the answer is not read.
    pub fn call(&mut self, method: &str, path: &str) -> Result<(), CallError> {
        self.raw(method, path, None).map(|_| ())
    }
}
