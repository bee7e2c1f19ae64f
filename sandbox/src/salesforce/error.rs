//! Salesforce's two error shapes: the request-level array
//! `[{"message","errorCode","fields"}]` sent with a 4xx status, and the per-item
//! `{"statusCode","message","fields"}` inside collection, composite and bulk results.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// A request that fails as a whole.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct SfError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub fields: Option<Vec<String>>,
}

impl SfError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> SfError {
        SfError { status, code: code.into(), message: message.into(), fields: None }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> SfError {
        SfError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found() -> SfError {
        SfError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
    }
    pub fn session() -> SfError {
        SfError::new(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid")
    }
    pub fn limit_exceeded() -> SfError {
        SfError::new(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    }
    pub fn method_not_allowed(method: &str, allowed: &str) -> SfError {
        SfError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        )
    }
    pub fn json_parser(message: impl Into<String>) -> SfError {
        SfError::bad_request("JSON_PARSER_ERROR", message)
    }
    pub fn unknown_field(field: &str, object: &str) -> SfError {
        SfError::bad_request("INVALID_FIELD", format!("No such column '{field}' on sobject of type {object}"))
    }
    /// A single-record operation failing with item errors: 400 with all of them.
    pub fn from_items(errors: &[ItemError]) -> SfError {
        let first = errors
            .first()
            .cloned()
            .unwrap_or_else(|| ItemError::new("UNKNOWN_EXCEPTION", "unknown error", &[]));
        let mut e = SfError::bad_request(&first.status_code, first.message.clone());
        e.fields = Some(first.fields.clone());
        e
    }

    pub fn body(&self) -> Value {
        match &self.fields {
            Some(fields) => json!([{"message": self.message, "errorCode": self.code, "fields": fields}]),
            None => json!([{"message": self.message, "errorCode": self.code}]),
        }
    }
}

/// One record's failure inside a batch result.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl ItemError {
    pub fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> ItemError {
        ItemError {
            status_code: code.into(),
            message: message.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"statusCode": self.status_code, "message": self.message, "fields": self.fields})
    }

    /// The request-level shape, for single-record endpoints.
    pub fn to_request_json(&self) -> Value {
        json!({"message": self.message, "errorCode": self.status_code, "fields": self.fields})
    }

    /// `CODE:message:Field1,Field2 --`, as Bulk API `sf__Error` writes it.
    pub fn to_bulk(&self) -> String {
        format!("{}:{}:{} --", self.status_code, self.message, self.fields.join(","))
    }

    pub fn rolled_back() -> ItemError {
        ItemError::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            &[],
        )
    }
}

/// The body of a 4xx answer for several item errors of one record.
pub fn items_body(errors: &[ItemError]) -> Value {
    Value::Array(errors.iter().map(ItemError::to_request_json).collect())
}
