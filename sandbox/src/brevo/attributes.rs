//! Contact attributes: their definitions (name, category, type), how incoming
//! values are checked against them, and the `/v3/contacts/attributes` endpoints.
//!
//! Brevo only stores values for attributes that exist in the account, under their
//! UPPERCASE name; a value of the wrong type (text in a date attribute, say) is
//! silently ignored, not an error. The identifier attributes are special: `SMS`,
//! `WHATSAPP` and `LANDLINE_NUMBER` must be phone numbers in international format
//! (else 400 `invalid_parameter`) and are stored as digits without `+`; `EXT_ID`
//! is text; `EMAIL` (on update) changes the contact's email.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Brevo;
use super::error::{ApiError, JsonBody};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrCategory {
    Normal,
    Transactional,
    Category,
    Calculated,
    Global,
}

impl AttrCategory {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "normal" => Self::Normal,
            "transactional" => Self::Transactional,
            "category" => Self::Category,
            "calculated" => Self::Calculated,
            "global" => Self::Global,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Transactional => "transactional",
            Self::Category => "category",
            Self::Calculated => "calculated",
            Self::Global => "global",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    Text,
    Date,
    Float,
    Boolean,
    Id,
    Category,
    MultipleChoice,
}

impl AttrType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => Self::Text,
            "date" => Self::Date,
            "float" => Self::Float,
            "boolean" => Self::Boolean,
            "id" => Self::Id,
            "category" => Self::Category,
            "multiple-choice" => Self::MultipleChoice,
            _ => return None,
        })
    }

    /// The type as `GET /contacts/attributes` reports it (a category attribute is
    /// reported as `text` with its `enumeration`, as in Brevo's own example).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text | Self::Category => "text",
            Self::Date => "date",
            Self::Float => "float",
            Self::Boolean => "boolean",
            Self::Id => "id",
            Self::MultipleChoice => "multiple-choice",
        }
    }
}

/// One attribute defined in the account.
#[derive(Debug, Clone)]
pub struct AttributeDef {
    pub name: String,
    pub category: AttrCategory,
    pub kind: AttrType,
    /// `category` attributes: `(value, label)` pairs.
    pub enumeration: Vec<(i64, String)>,
    /// `multiple-choice` attributes: the allowed options.
    pub options: Vec<String>,
    /// `calculated` / `global` attributes: the formula.
    pub formula: Option<String>,
    pub is_recurring: Option<bool>,
}

impl AttributeDef {
    fn simple(name: &str, category: AttrCategory, kind: AttrType) -> Self {
        Self {
            name: name.to_string(),
            category,
            kind,
            enumeration: Vec::new(),
            options: Vec::new(),
            formula: None,
            is_recurring: None,
        }
    }

    /// The attributes a new Brevo account has.
    pub fn defaults() -> Vec<AttributeDef> {
        use AttrCategory::Normal;
        let mut defs: Vec<AttributeDef> =
            ["FIRSTNAME", "LASTNAME", "SMS", "WHATSAPP", "LANDLINE_NUMBER", "EXT_ID"]
                .into_iter()
                .map(|name| Self::simple(name, Normal, AttrType::Text))
                .collect();
        defs.push(Self::simple("OPT_IN", Normal, AttrType::Boolean));
        let mut doi = Self::simple("DOUBLE_OPT-IN", AttrCategory::Category, AttrType::Category);
        doi.enumeration = vec![(1, "Yes".into()), (2, "No".into())];
        defs.push(doi);
        defs
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "category": self.category.as_str(),
            "type": self.kind.as_str(),
        });
        if !self.enumeration.is_empty() {
            v["enumeration"] = self
                .enumeration
                .iter()
                .map(|(value, label)| json!({ "value": value, "label": label }))
                .collect();
        }
        if self.kind == AttrType::MultipleChoice {
            v["multiCategoryOptions"] = json!(self.options);
        }
        if let Some(formula) = &self.formula {
            v["calculatedValue"] = json!(formula);
        }
        v
    }

    /// The stored form of `value` for this attribute, or `None` when Brevo would
    /// silently ignore it (wrong type, unknown option, read-only attribute).
    fn coerce(&self, value: &Value) -> Option<Value> {
        if matches!(self.category, AttrCategory::Calculated | AttrCategory::Global)
            || self.kind == AttrType::Id
        {
            return None;
        }
        match self.kind {
            AttrType::Text => match value {
                Value::String(s) => Some(json!(s)),
                Value::Number(n) => Some(json!(n.to_string())),
                _ => None,
            },
            AttrType::Float => match value {
                Value::Number(_) => Some(value.clone()),
                Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| json!(f)),
                _ => None,
            },
            AttrType::Boolean => match value {
                Value::Bool(_) => Some(value.clone()),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Some(json!(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Some(json!(false)),
                _ => None,
            },
            AttrType::Date => value.as_str().and_then(parse_date).map(|d| json!(d.to_string())),
            AttrType::Category => {
                let found = match value {
                    Value::Number(n) => {
                        n.as_i64().and_then(|n| self.enumeration.iter().find(|(v, _)| *v == n))
                    }
                    Value::String(s) => self.enumeration.iter().find(|(v, label)| {
                        label.eq_ignore_ascii_case(s) || s.trim().parse::<i64>().ok() == Some(*v)
                    }),
                    _ => None,
                };
                found.map(|(_, label)| json!(label))
            }
            AttrType::MultipleChoice => {
                let picked: Option<Vec<&str>> = match value {
                    Value::String(s) => Some(vec![s.as_str()]),
                    Value::Array(items) => items.iter().map(Value::as_str).collect(),
                    _ => None,
                };
                picked.filter(|p| p.iter().all(|o| self.options.iter().any(|opt| opt == o))).map(|p| json!(p))
            }
            AttrType::Id => None,
        }
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.date_naive()))
}

/// What to do with one attribute of a contact.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrOp {
    Set(Value),
    Clear,
}

/// The attributes of a request, checked against the account's definitions.
#[derive(Debug, Default)]
pub struct Coerced {
    pub ops: Vec<(String, AttrOp)>,
    /// A new email given as the `EMAIL` attribute.
    pub email: Option<String>,
}

/// How incoming attribute values are read.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// An API call: names must match exactly; `null` or `""` clears the value.
    Api,
    /// An import row: names are case-insensitive; an empty value clears only
    /// when the import asked for `emptyContactsAttributes`.
    Import { empty_clears: bool },
}

/// The phone-number identifier attributes.
pub const PHONE_ATTRS: [&str; 3] = ["SMS", "WHATSAPP", "LANDLINE_NUMBER"];

/// Checks `raw` against the definitions. Unknown attributes and values of the
/// wrong type are dropped; a malformed phone number is an error.
pub fn coerce_attributes(
    defs: &BTreeMap<String, AttributeDef>,
    raw: &Map<String, Value>,
    source: Source,
) -> Result<Coerced, ApiError> {
    let mut out = Coerced::default();
    for (key, value) in raw {
        let name = match source {
            Source::Api => key.clone(),
            Source::Import { .. } => key.trim().to_ascii_uppercase(),
        };
        let empty = value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty());
        if empty {
            let clears = match source {
                Source::Api => true,
                Source::Import { empty_clears } => empty_clears,
            };
            if clears && name != "EMAIL" && (defs.contains_key(&name) || PHONE_ATTRS.contains(&name.as_str()))
            {
                out.ops.push((name, AttrOp::Clear));
            }
            continue;
        }
        if name == "EMAIL" {
            let email = value.as_str().ok_or_else(|| ApiError::invalid("Invalid email address"))?;
            out.email = Some(normalize_email(email)?);
        } else if PHONE_ATTRS.contains(&name.as_str()) {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(ApiError::invalid(format!("Invalid {name} number"))),
            };
            let phone = normalize_phone(&text).ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid phone number for {name}: use the international format with the country code"
                ))
            })?;
            out.ops.push((name, AttrOp::Set(json!(phone))));
        } else if name == "EXT_ID" {
            match value {
                Value::String(s) => out.ops.push((name, AttrOp::Set(json!(s)))),
                Value::Number(n) => out.ops.push((name, AttrOp::Set(json!(n.to_string())))),
                _ => {}
            }
        } else if let Some(stored) = defs.get(&name).and_then(|def| def.coerce(value)) {
            out.ops.push((name, AttrOp::Set(stored)));
        }
    }
    Ok(out)
}

/// Lower-cases and checks an email address.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_ascii_lowercase();
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
    }) && !email.chars().any(char::is_whitespace);
    if valid { Ok(email) } else { Err(ApiError::invalid("Invalid email address")) }
}

/// A phone number in international format (`+33612345678`, `0033612345678` or
/// `33612345678`) as Brevo stores it: digits only, country code first. A number
/// in national format (one leading `0`) has no country code and is rejected.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let compact: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = if let Some(rest) = compact.strip_prefix('+') {
        rest
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest
    } else if compact.starts_with('0') {
        return None;
    } else {
        compact.as_str()
    };
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then(|| digits.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
    is_recurring: Option<bool>,
    enumeration: Option<Vec<EnumItem>>,
    multi_category_options: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct EnumItem {
    value: i64,
    label: String,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `GET /v3/contacts/attributes`
pub async fn list(State(api): State<Arc<Brevo>>) -> Response {
    let store = api.read();
    let attributes: Vec<Value> = store
        .attribute_order
        .iter()
        .filter_map(|n| store.attributes.get(n))
        .map(AttributeDef::to_json)
        .collect();
    Json(json!({ "attributes": attributes })).into_response()
}

/// `POST /v3/contacts/attributes/{attributeCategory}/{attributeName}`
pub async fn create(
    State(api): State<Arc<Brevo>>,
    Path((category, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<AttributeBody>,
) -> Result<Response, ApiError> {
    let category =
        AttrCategory::parse(&category).ok_or_else(|| ApiError::invalid("attributeCategory is not valid"))?;
    if !valid_name(&name) {
        return Err(ApiError::invalid("attributeName is not valid"));
    }
    let name = name.to_ascii_uppercase();
    let kind = match (category, body.kind.as_deref()) {
        (_, Some(t)) => AttrType::parse(t).ok_or_else(|| ApiError::invalid("type is not valid"))?,
        (AttrCategory::Category, None) => AttrType::Category,
        (AttrCategory::Transactional, None) => AttrType::Id,
        (_, None) => AttrType::Text,
    };
    let allowed = match kind {
        AttrType::Boolean | AttrType::MultipleChoice => category == AttrCategory::Normal,
        AttrType::Id => category == AttrCategory::Transactional,
        AttrType::Category => category == AttrCategory::Category,
        AttrType::Text | AttrType::Date | AttrType::Float => category != AttrCategory::Category,
    };
    if !allowed {
        return Err(ApiError::invalid(format!(
            "type {} is not allowed for the {} category",
            body.kind.as_deref().unwrap_or("text"),
            category.as_str()
        )));
    }
    let enumeration: Vec<(i64, String)> =
        body.enumeration.unwrap_or_default().into_iter().map(|e| (e.value, e.label)).collect();
    if category == AttrCategory::Category && enumeration.is_empty() {
        return Err(ApiError::missing("enumeration is required for a category attribute"));
    }
    let options = body.multi_category_options.unwrap_or_default();
    if kind == AttrType::MultipleChoice && options.is_empty() {
        return Err(ApiError::missing("multiCategoryOptions is required for a multiple-choice attribute"));
    }
    let computed = matches!(category, AttrCategory::Calculated | AttrCategory::Global);
    if computed && body.value.is_none() {
        return Err(ApiError::missing("value is required for a calculated or global attribute"));
    }
    let mut store = api.write();
    if store.attributes.contains_key(&name) {
        return Err(ApiError::duplicate("Attribute name already exists", &["attributeName"]));
    }
    store.add_attribute(AttributeDef {
        name,
        category,
        kind,
        enumeration,
        options,
        formula: if computed { body.value } else { None },
        is_recurring: if computed { body.is_recurring } else { None },
    });
    Ok(StatusCode::CREATED.into_response())
}

/// `PUT /v3/contacts/attributes/{attributeCategory}/{attributeName}`
pub async fn update(
    State(api): State<Arc<Brevo>>,
    Path((category, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<AttributeBody>,
) -> Result<Response, ApiError> {
    let category = AttrCategory::parse(&category)
        .filter(|c| *c != AttrCategory::Transactional)
        .ok_or_else(|| ApiError::invalid("attributeCategory is not valid"))?;
    let mut store = api.write();
    let def = store
        .attributes
        .get_mut(&name.to_ascii_uppercase())
        .filter(|d| d.category == category)
        .ok_or_else(|| ApiError::not_found("Attribute not found"))?;
    if let Some(items) = body.enumeration {
        if def.kind != AttrType::Category {
            return Err(ApiError::invalid("enumeration is only for category attributes"));
        }
        def.enumeration = items.into_iter().map(|e| (e.value, e.label)).collect();
    }
    if let Some(options) = body.multi_category_options {
        if def.kind != AttrType::MultipleChoice {
            return Err(ApiError::invalid("multiCategoryOptions is only for multiple-choice attributes"));
        }
        for option in options {
            if !def.options.contains(&option) {
                def.options.push(option);
            }
        }
    }
    if let Some(value) = body.value {
        if !matches!(def.category, AttrCategory::Calculated | AttrCategory::Global) {
            return Err(ApiError::invalid("value is only for calculated or global attributes"));
        }
        def.formula = Some(value);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v3/contacts/attributes/{attributeCategory}/{attributeName}`
pub async fn delete(
    State(api): State<Arc<Brevo>>,
    Path((category, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let category =
        AttrCategory::parse(&category).ok_or_else(|| ApiError::invalid("attributeCategory is not valid"))?;
    let name = name.to_ascii_uppercase();
    let mut store = api.write();
    if !store.attributes.get(&name).is_some_and(|d| d.category == category) {
        return Err(ApiError::not_found("Attribute not found"));
    }
    store.remove_attribute(&name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_need_a_country_code() {
        assert_eq!(normalize_phone("+33 6 12 34 56 78").as_deref(), Some("33612345678"));
        assert_eq!(normalize_phone("0033612345678").as_deref(), Some("33612345678"));
        assert_eq!(normalize_phone("33612345678").as_deref(), Some("33612345678"));
        assert_eq!(normalize_phone("0612345678"), None);
        assert_eq!(normalize_phone("+33abc"), None);
        assert_eq!(normalize_phone("+1234"), None);
    }

    #[test]
    fn wrong_types_are_ignored() {
        let mut defs = BTreeMap::new();
        for def in [
            AttributeDef::simple("DOB", AttrCategory::Normal, AttrType::Date),
            AttributeDef::simple("SCORE", AttrCategory::Normal, AttrType::Float),
            AttributeDef::simple("VIP", AttrCategory::Normal, AttrType::Boolean),
        ] {
            defs.insert(def.name.clone(), def);
        }
        let raw = json!({"DOB": "not a date", "SCORE": "12.5", "VIP": "yes", "UNKNOWN": "x"});
        let out = coerce_attributes(&defs, raw.as_object().unwrap(), Source::Api).unwrap();
        assert_eq!(out.ops, vec![("SCORE".to_string(), AttrOp::Set(json!(12.5)))]);
    }
}
