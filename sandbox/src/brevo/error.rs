//! Brevo's error shape and the request extractors that turn bad input into it.
//!
//! Every error Brevo returns is `{"code": "...", "message": "..."}` (the spec's
//! `errorModel`); contact endpoints may add `metadata` (`contactErrorModel`), e.g.
//! `{"duplicate_identifiers": ["email"]}`. Malformed JSON bodies and query strings
//! become 400s in that shape instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// One Brevo API error: the HTTP status and the `errorModel` body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub metadata: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), metadata: None }
    }

    /// 400 `invalid_parameter`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    /// 400 `missing_parameter`.
    pub fn missing(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "missing_parameter", message)
    }

    /// 400 `out_of_range`.
    pub fn out_of_range(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "out_of_range", message)
    }

    /// 404 `document_not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "document_not_found", message)
    }

    /// 400 `duplicate_parameter` naming the identifiers already taken.
    pub fn duplicate(message: impl Into<String>, identifiers: &[&str]) -> Self {
        Self {
            metadata: Some(json!({ "duplicate_identifiers": identifiers })),
            ..Self::new(StatusCode::BAD_REQUEST, "duplicate_parameter", message)
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Key not found")
    }

    pub fn too_many_requests() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "The expected rate limit is exceeded.")
    }

    /// The error Brevo sends for a bare status (used by fault injection too).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("bad_request", "Bad request"),
            401 => return Self::unauthorized(),
            402 => ("not_enough_credits", "Not enough credits, plan upgrade needed"),
            403 => ("permission_denied", "Permission denied"),
            404 => ("document_not_found", "Document not found"),
            405 => ("method_not_allowed", "Method not allowed"),
            406 => ("not_acceptable", "Not acceptable"),
            422 => ("unprocessable_entity", "Unprocessable entity"),
            425 => ("account_in_process", "Too early: the account is being processed"),
            429 => return Self::too_many_requests(),
            _ => ("internal_error", "Internal server error"),
        };
        Self::new(status, code, message)
    }

    pub fn body(&self) -> Value {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(metadata) = &self.metadata {
            body["metadata"] = metadata.clone();
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// A JSON request body; malformed JSON is Brevo's 400 `bad_request`, a field of
/// the wrong type its 400 `invalid_parameter`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body the way [`JsonBody`] does.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "Input must be a valid JSON object")
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Input must be a valid JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The query string as ordered pairs, percent-decoded.
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `0..=max`, or `default` when absent.
    pub fn int(&self, name: &str, default: u64, max: Option<u64>) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        let n: u64 = raw
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid(format!("{name} should be a non-negative integer")))?;
        match max {
            Some(max) if n > max => {
                Err(ApiError::out_of_range(format!("{name} exceeds its maximum value of {max}")))
            }
            _ => Ok(n),
        }
    }

    /// `sort=asc|desc`; Brevo defaults to descending order of creation.
    pub fn descending(&self) -> Result<bool, ApiError> {
        match self.get("sort") {
            None | Some("desc") => Ok(true),
            Some("asc") => Ok(false),
            Some(_) => Err(ApiError::invalid("sort should be either asc or desc")),
        }
    }
}
