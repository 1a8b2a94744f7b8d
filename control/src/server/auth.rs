//! The guard in front of every route: a bearer token when one is configured, loopback peers
//! only otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, Core};

pub(crate) async fn guard(State(core): State<Arc<dyn Core>>, req: Request, next: Next) -> Response {
    match check(core.token(), &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(token: Option<&str>, req: &Request) -> Result<(), ApiError> {
    match token {
        Some(token) => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer);
            match given {
                Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
                Some(_) => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid bearer token",
                    None,
                )),
                None => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "authentication required: send `Authorization: Bearer <token>`",
                    None,
                )),
            }
        }
        None => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| *a);
            match peer {
                Some(peer) if peer.ip().to_canonical().is_loopback() => Ok(()),
                Some(peer) => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "no API token is configured, so only loopback clients are served (not {})",
                        peer.ip()
                    ),
                    None,
                )),
                None => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "no API token is configured and the client address is unknown",
                    None,
                )),
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right (only the guess's own length shows).
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, g) in given.iter().enumerate() {
        let e = expected.get(i).copied().unwrap_or(!*g);
        diff |= std::hint::black_box(g ^ e);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer  "), None);
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
