//! The one error type of the HTTP layer and its mapping to SCIM error responses (RFC 7644 §3.12).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::{scim, store};

pub(crate) const SCIM_CONTENT_TYPE: &str = "application/scim+json";
pub(crate) const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Longest request target (path and query) answered; a SCIM filter fits many times over.
pub(crate) const MAX_TARGET: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Scim(#[from] scim::Error),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("method {0} is not allowed on this endpoint")]
    MethodNotAllowed(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body did not arrive within {0} seconds")]
    BodyTimeout(u64),
    #[error("{0}")]
    TooManyRequests(&'static str),
    #[error("the request target is {0} bytes long; at most {max} are read", max = MAX_TARGET)]
    UriTooLong(usize),
    #[error(
        "the identity provider's schemas or password policy changed while this request was in \
         flight; nothing was written, retry it"
    )]
    ModelChanged,
    #[error("storage failure")]
    Store(store::Error),
}

impl store::writer::StorageFailure for Error {
    fn storage_failure(&self) -> Option<store::writer::Failure> {
        match self {
            Error::Store(e) => e.storage_failure(),
            _ => None,
        }
    }
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Error {
        match e {
            store::Error::Rejected(e) => Error::Scim(e),
            e => Error::Store(e),
        }
    }
}

impl Error {
    pub(crate) fn invalid_syntax(detail: impl Into<String>) -> Error {
        Error::Scim(scim::Error::InvalidSyntax(detail.into()))
    }

    pub(crate) fn scim_type(&self) -> Option<&'static str> {
        match self {
            Error::Scim(e) => Some(e.scim_type()),
            Error::Store(store::Error::Conflict(_)) => Some("uniqueness"),
            Error::Store(store::Error::Invalid(_)) => Some("invalidValue"),
            Error::Store(store::Error::Rejected(e)) => Some(e.scim_type()),
            _ => None,
        }
    }

    /// What the client is told. Storage failures stay generic: database text never leaves.
    pub(crate) fn detail(&self) -> String {
        match self {
            Error::Store(
                e @ (store::Error::NotFound(_)
                | store::Error::Conflict(_)
                | store::Error::Invalid(_)
                | store::Error::Rejected(_)
                | store::Error::VersionMismatch(_)),
            ) => e.to_string(),
            Error::Store(store::Error::Busy(_)) => {
                "the database is busy; retry the request shortly".to_string()
            }
            Error::Store(store::Error::Unavailable(_)) => {
                "the server cannot write or read its database right now; see /healthz".to_string()
            }
            Error::Store(store::Error::Full(_)) => {
                "the server's disk is full; nothing was written, retry later".to_string()
            }
            Error::Store(store::Error::Internal(_)) => "internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::Scim(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Error::ModelChanged => StatusCode::SERVICE_UNAVAILABLE,
            Error::Store(store::Error::NotFound(_)) => StatusCode::NOT_FOUND,
            Error::Store(store::Error::Conflict(_)) => StatusCode::CONFLICT,
            Error::Store(store::Error::Invalid(_) | store::Error::Rejected(_)) => {
                StatusCode::BAD_REQUEST
            }
            Error::Store(store::Error::VersionMismatch(_)) => StatusCode::PRECONDITION_FAILED,
            Error::Store(store::Error::Busy(_) | store::Error::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Store(store::Error::Full(_)) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Store(store::Error::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // The writer logs a failing database itself, at most once a minute.
        let reported = matches!(
            self,
            Error::Store(
                store::Error::Full(_) | store::Error::Unavailable(_) | store::Error::Busy(_)
            )
        );
        if status.is_server_error() && !reported {
            tracing::error!(error = %self, cause = ?self, "request failed");
        }
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": status.as_u16().to_string(),
            "detail": self.detail(),
        });
        if let Some(t) = self.scim_type() {
            body["scimType"] = t.into();
        }
        let mut res = HttpResponse::build(status);
        res.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE));
        match status {
            StatusCode::UNAUTHORIZED => {
                res.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scimd\""),
                ));
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            // The rest of the body may never come: the connection cannot be reused.
            StatusCode::REQUEST_TIMEOUT => {
                res.insert_header((header::CONNECTION, HeaderValue::from_static("close")));
            }
            _ => {}
        }
        res.body(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: &Error) -> serde_json::Value {
        let bytes = e.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn storage_errors_never_leak_database_text() {
        let e = Error::Store(store::Error::from(rusqlite::Error::InvalidColumnName(
            "secret_hash".into(),
        )));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(&e);
        assert_eq!(body["status"], "500");
        assert!(!body.to_string().contains("secret_hash"), "{body}");
    }

    #[test]
    fn unauthorized_has_bearer_challenge_and_scim_body() {
        let res = Error::Unauthorized("invalid token").error_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            SCIM_CONTENT_TYPE
        );
        let body = body_of(&Error::Unauthorized("invalid token"));
        assert_eq!(body["schemas"][0], ERROR_SCHEMA);
        assert!(body.get("scimType").is_none());
    }

    #[test]
    fn conflicts_are_uniqueness() {
        let body = body_of(&Error::Store(store::Error::Conflict("taken".into())));
        assert_eq!(
            (body["status"].as_str(), body["scimType"].as_str()),
            (Some("409"), Some("uniqueness"))
        );
    }
}
