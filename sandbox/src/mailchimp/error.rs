//! Mailchimp's error shape: an RFC 7807 problem document served as
//! `application/problem+json`, `{type, title, status, detail, instance}`, plus an
//! `errors` list (`[{field, message}]`) for merge-field validation failures.
//! Titles and details follow Mailchimp's error glossary.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Where Mailchimp's problem documents point their `type`.
const ERROR_DOCS: &str = "https://mailchimp.com/developer/marketing/docs/errors/";

/// Everything a Mailchimp call can fail with, as the API reports it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum McError {
    #[error("API Key Missing")]
    KeyMissing,
    #[error("API Key Invalid")]
    KeyInvalid,
    #[error("Forbidden")]
    Forbidden,
    #[error("Resource Not Found")]
    NotFound,
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("Too Many Requests: {0}")]
    TooManyRequests(String),
    #[error("JSON Parse Error: {0}")]
    JsonParse(String),
    /// 400 "Invalid Resource" with an optional per-field `errors` list.
    #[error("Invalid Resource: {detail}")]
    Invalid { detail: String, errors: Vec<(String, String)> },
    #[error("Member Exists: {0}")]
    MemberExists(String),
    #[error("Member In Compliance State: {0}")]
    Compliance(String),
    #[error("Forgotten Email Not Subscribed: {0}")]
    Forgotten(String),
    /// Any other status, with the glossary's title and detail for it.
    #[error("{0}")]
    Status(StatusCode),
}

impl McError {
    pub fn invalid(detail: impl Into<String>) -> Self {
        McError::Invalid { detail: detail.into(), errors: Vec::new() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            McError::KeyMissing | McError::KeyInvalid => StatusCode::UNAUTHORIZED,
            McError::Forbidden => StatusCode::FORBIDDEN,
            McError::NotFound => StatusCode::NOT_FOUND,
            McError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            McError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            McError::JsonParse(_)
            | McError::Invalid { .. }
            | McError::MemberExists(_)
            | McError::Compliance(_)
            | McError::Forgotten(_) => StatusCode::BAD_REQUEST,
            McError::Status(s) => *s,
        }
    }

    fn title_detail(&self) -> (String, String) {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        match self {
            McError::KeyMissing => s("API Key Missing", "Your request did not include an API key."),
            McError::KeyInvalid => s(
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            ),
            McError::Forbidden => s("Forbidden", "You are not permitted to access this resource."),
            McError::NotFound => s("Resource Not Found", "The requested resource could not be found."),
            McError::MethodNotAllowed => s(
                "Method Not Allowed",
                "The requested method and resource are not compatible. See the Allow header for this resource's available methods.",
            ),
            McError::TooManyRequests(d) => ("Too Many Requests".into(), d.clone()),
            McError::JsonParse(d) => ("JSON Parse Error".into(), d.clone()),
            McError::Invalid { detail, .. } => ("Invalid Resource".into(), detail.clone()),
            McError::MemberExists(d) => ("Member Exists".into(), d.clone()),
            McError::Compliance(d) => ("Member In Compliance State".into(), d.clone()),
            McError::Forgotten(d) => ("Forgotten Email Not Subscribed".into(), d.clone()),
            McError::Status(status) => match status.as_u16() {
                429 => s("Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."),
                500 => s(
                    "Internal Server Error",
                    "An unexpected internal error has occurred. Please contact Support for more information.",
                ),
                503 => s("Service Unavailable", "This method has been disabled."),
                code => (
                    status.canonical_reason().unwrap_or("Error").to_string(),
                    format!("The request failed with status {code}."),
                ),
            },
        }
    }

    /// The problem document (also used for per-operation results of `/batches`).
    pub fn body(&self) -> Value {
        let (title, detail) = self.title_detail();
        let mut body = json!({
            "type": ERROR_DOCS,
            "title": title,
            "status": self.status().as_u16(),
            "detail": detail,
            "instance": uuid::Uuid::new_v4().to_string(),
        });
        if let McError::Invalid { errors, .. } = self
            && !errors.is_empty()
        {
            body["errors"] =
                errors.iter().map(|(field, message)| json!({"field": field, "message": message})).collect();
        }
        body
    }

    /// The message the batch-subscribe endpoint puts in `errors[].error`.
    pub fn batch_message(&self) -> String {
        let (_, detail) = self.title_detail();
        match self {
            McError::Invalid { errors, .. } if !errors.is_empty() => {
                let fields: Vec<String> = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect();
                format!("{detail} {}", fields.join("; "))
            }
            _ => detail,
        }
    }
}

impl IntoResponse for McError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json; charset=utf-8"),
        );
        response
    }
}
