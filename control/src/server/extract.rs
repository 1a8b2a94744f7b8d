//! Extractors whose rejections are JSON [`ApiError`]s naming the field, instead of axum's
//! plain-text ones.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON body, parsed with the failing field's path (`servers[0].weight`) reported.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a JSON body with `Content-Type: application/json`",
                None,
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text(), None))?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses `bytes` as a `T`; an error is a 400 naming the path of the offending field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        body_error(&path, &inner)
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}"), None))?;
    Ok(value)
}

/// A 400 for a serde_json error at `path` (`.` = the root).
fn body_error(path: &str, err: &serde_json::Error) -> ApiError {
    // A syntax error has no field: serde_path_to_error then reports "?" or the root.
    let mut field = if path == "." || path == "?" || err.is_syntax() || err.is_eof() {
        String::new()
    } else {
        path.to_owned()
    };
    let message = err.to_string();
    // "unknown field `x`" and "missing field `x`" are about the key `x` of that mapping.
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((key, _)) = rest.split_once('`')
        {
            // serde_path_to_error already ends the path with an unknown key, not a missing one.
            if field == key || field.ends_with(&format!(".{key}")) {
                break;
            }
            field = if field.is_empty() {
                key.to_owned()
            } else {
                format!("{field}.{key}")
            };
        }
    }
    let message = if err.is_syntax() || err.is_eof() {
        format!("invalid JSON: {message}")
    } else {
        message
    };
    ApiError::bad_request(message, (!field.is_empty()).then_some(field.as_str()))
}

/// Path parameters, each a string; a parameter that cannot be decoded is a 400.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| ApiPath(t))
            .map_err(|e| ApiError::bad_request(e.body_text(), None))
    }
}

/// Query parameters by name (the handler parses each one and names it when it is wrong).
#[derive(Debug)]
pub(crate) struct ApiQuery(pub(crate) HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::bad_request(e.body_text(), None))
    }
}

impl ApiQuery {
    /// The parameter `name` parsed with `parse`, or `default` when absent.
    pub(crate) fn get<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(raw) => parse(raw).map_err(|e| ApiError::bad_request(e, Some(name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        weight: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        servers: Vec<Inner>,
    }

    fn field(text: &str) -> Option<String> {
        parse_json::<Outer>(text.as_bytes()).unwrap_err().body.field
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field(r#"{"servers":[{"weight":"x"}]}"#).as_deref(),
            Some("servers[0].weight")
        );
        assert_eq!(
            field(r#"{"servers":[{"weight":1,"bogus":2}]}"#).as_deref(),
            Some("servers[0].bogus")
        );
        assert_eq!(
            field(r#"{"servers":[{}]}"#).as_deref(),
            Some("servers[0].weight")
        );
        assert_eq!(field(r#"{"nope":1}"#).as_deref(), Some("nope"));
        let err = parse_json::<Outer>(b"{\"servers\": [").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.body.error.starts_with("invalid JSON"), "{err:?}");
        assert!(parse_json::<Outer>(br#"{"servers":[]} x"#).is_err());
    }
}
