//! [`ApiError`]: every failure the server answers, as a status and an [`ErrorBody`].

use std::any::Any;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::ErrorBody;
use crate::backend::BackendError;

/// An error answer: status plus JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>, field: Option<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                field,
            },
        }
    }

    /// 400: the request does not parse.
    pub(crate) fn bad_request(error: impl Into<String>, field: Option<&str>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error, field.map(str::to_owned))
    }

    /// 404: the named thing does not exist.
    pub(crate) fn not_found(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, error, None)
    }

    /// 409: the thing to create exists already.
    pub(crate) fn conflict(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, error, None)
    }

    /// 422: the request parses but the configuration it makes is invalid.
    pub(crate) fn invalid(error: impl Into<String>, field: Option<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error, field)
    }

    /// 500.
    pub(crate) fn internal(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error, None)
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Rejected { message, field } => ApiError::invalid(
                format!("the dataplane rejected the configuration: {message}"),
                field,
            ),
            e @ BackendError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rvs\""),
            );
        }
        response
    }
}

/// The answer when a handler panicked (it must not; this is the safety net).
pub(crate) fn panicked(err: Box<dyn Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!("request handler panicked: {what}");
    ApiError::internal("internal error").into_response()
}
