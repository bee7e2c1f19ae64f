//! `lead-to-contact` in Rust: maps a Salesforce Lead (or Contact) to an
//! ActiveCampaign contact. The same mapping is written in every
//! `examples/<lang>/`; `examples/fixtures.jsonl` pins its behaviour and all
//! five must give identical results (see `examples/README.md` for the rules).

use crmsync_sdk::prelude::*;

/// The rule. No config: the mapping is fixed.
#[derive(Default)]
pub struct LeadToContact;

/// ASCII whitespace: the only whitespace the mapping trims or collapses, so
/// every language agrees on what a space is.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn trim(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Trims, collapses runs of whitespace to one space, and capitalises each word
/// (a word starts after a space, `-` or `'`). Only ASCII letters change case.
pub fn normalize_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for word in raw.split(is_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        let mut start = true;
        for c in word.chars() {
            out.push(if start { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() });
            start = c == '-' || c == '\'';
        }
    }
    out
}

fn invalid(code: &str, field: &str, message: String) -> RecordError {
    RecordError::new(code, message).on(field)
}

fn wrong_type(field: &str, value: &Value, expected: &str) -> RecordError {
    invalid("wrong-type", field, format!("{field} must be {expected}, not {}", value.kind()))
}

/// Parses an amount written by a person into a decimal with two places.
/// `"$1,234.5"`, `"1 234,50 €"`, `"EUR 1.234.567"`, `"-£12"`.
pub fn parse_currency(field: &str, raw: &str) -> Result<String, RecordError> {
    let bad = |why: &str| invalid("invalid-currency", field, format!("{raw:?} is not an amount: {why}"));
    let mut t = trim(raw);
    let mut negative = false;
    if let Some(rest) = t.strip_prefix('-') {
        negative = true;
        t = rest;
    }
    let currency = |c: char| is_space(c) || matches!(c, '$' | '€' | '£') || c.is_ascii_uppercase();
    t = t.trim_matches(currency);
    if !negative && let Some(rest) = t.strip_prefix('-') {
        negative = true;
        t = rest;
    }
    let bytes = t.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_digit() || !bytes[bytes.len() - 1].is_ascii_digit() {
        return Err(bad("it must be digits with an optional currency"));
    }
    let is_sep = |b: u8| matches!(b, b',' | b'.' | b' ');
    let mut last_sep = None;
    for (i, &b) in bytes.iter().enumerate() {
        if is_sep(b) {
            if is_sep(bytes[i - 1]) {
                return Err(bad("two separators in a row"));
            }
            last_sep = Some(i);
        } else if !b.is_ascii_digit() {
            return Err(bad("unexpected character"));
        }
    }
    // The last `.` or `,` is the decimal mark when 1 or 2 digits follow it; with
    // 3 it separates thousands; more is an error.
    let mark = match last_sep {
        Some(i) if bytes[i] != b' ' => match bytes.len() - i - 1 {
            1 | 2 => Some(i),
            3 => None,
            _ => return Err(bad("too many digits after the last separator")),
        },
        _ => None,
    };
    let digits = |s: &[u8]| s.iter().filter(|b| b.is_ascii_digit()).map(|&b| b as char).collect::<String>();
    let (int, frac) = match mark {
        Some(i) => (digits(&bytes[..i]), digits(&bytes[i + 1..])),
        None => (digits(bytes), String::new()),
    };
    to_cents(negative, &int, &frac).ok_or_else(|| bad("more than 15 digits before the decimal mark"))
}

/// `-`, integer digits and up to two fraction digits as a canonical decimal
/// with two places: no leading zeros, no negative zero.
fn to_cents(negative: bool, int: &str, frac: &str) -> Option<String> {
    let int = int.trim_start_matches('0');
    if int.len() > 15 {
        return None;
    }
    let int = if int.is_empty() { "0" } else { int };
    let frac = format!("{frac:0<2}");
    let zero = int == "0" && frac == "00";
    Some(format!("{}{int}.{frac}", if negative && !zero { "-" } else { "" }))
}

/// A decimal that is already typed: only normalised to two places.
fn normalize_decimal(field: &str, d: &Decimal) -> Result<String, RecordError> {
    let text = d.to_string();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if frac.len() > 2 {
        return Err(invalid("invalid-currency", field, format!("{text} has more than two decimal places")));
    }
    to_cents(negative, int, frac)
        .ok_or_else(|| invalid("invalid-currency", field, format!("{text} is too large")))
}

/// `a@b.c`, one `@`, no whitespace, no empty domain label.
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && !e.contains(is_space)
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

/// Keeps a leading `+` and the digits; spaces, `-`, `.` and brackets go.
fn normalize_phone(raw: &str) -> Result<String, RecordError> {
    let t = trim(raw);
    let (plus, rest) = match t.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", t),
    };
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(invalid("invalid-phone", "Phone", format!("{raw:?} has a {c:?}"))),
        }
    }
    if !(6..=16).contains(&digits.len()) {
        return Err(invalid("invalid-phone", "Phone", format!("{raw:?} must have 6 to 16 digits")));
    }
    Ok(format!("{plus}{digits}"))
}

/// The LeadSource picklist, Salesforce value to marketing value.
fn lead_source(value: &str) -> &'static str {
    match value {
        "Web" => "website",
        "Phone Inquiry" => "phone",
        "Partner Referral" => "partner",
        "Trade Show" => "event",
        _ => "other",
    }
}

fn tags<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let tag = trim(item).to_ascii_lowercase();
        if !tag.is_empty() && !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

/// A text field: `None` when absent, null or blank; an error when not text.
fn text<'a>(record: &'a Record, field: &str) -> Result<Option<&'a str>, RecordError> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Text(s)) => Ok(Some(trim(s)).filter(|s| !s.is_empty())),
        Some(other) => Err(wrong_type(field, other, "text")),
    }
}

impl Mapper for LeadToContact {
    type Config = NoConfig;

    fn map(&self, ctx: &Context<NoConfig>, lead: Record) -> Result<Record, RecordError> {
        if lead.get("Crash__c").is_some() {
            // A debugging aid: shows how a panic is reported (see the README).
            panic!("lead-to-contact: deliberate crash (Crash__c is set)");
        }
        if ctx.direction != Direction::ToMarketing {
            return Err(RecordError::new(
                "unsupported-direction",
                "this mapping only runs towards marketing",
            ));
        }
        if lead.system != System::Salesforce || !matches!(lead.object_type.as_str(), "Lead" | "Contact") {
            return Err(RecordError::new(
                "unsupported-object",
                format!("only Salesforce Leads and Contacts are mapped, not {}", lead.object_type),
            ));
        }
        let mut out = Record::new(System::ActiveCampaign, "contact");
        if let Some(first) = text(&lead, "FirstName")? {
            out.set("firstName", normalize_name(first));
        }
        let last = text(&lead, "LastName")?
            .ok_or_else(|| invalid("missing-field", "LastName", "LastName is required".into()))?;
        out.set("lastName", normalize_name(last));
        let email = text(&lead, "Email")?
            .ok_or_else(|| invalid("missing-field", "Email", "Email is required".into()))?
            .to_ascii_lowercase();
        if !valid_email(&email) {
            return Err(invalid("invalid-email", "Email", format!("{email:?} is not an email address")));
        }
        out.set("email", email);
        if let Some(phone) = text(&lead, "Phone")? {
            out.set("phone", normalize_phone(phone)?);
        }
        let field = "AnnualRevenue__c";
        let revenue = match lead.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Text(s)) if trim(s).is_empty() => None,
            Some(Value::Text(s)) => Some(parse_currency(field, s)?),
            Some(Value::Decimal(d)) => Some(normalize_decimal(field, d)?),
            Some(other) => return Err(wrong_type(field, other, "text or decimal")),
        };
        if let Some(cents) = revenue {
            let decimal =
                cents.parse::<Decimal>().map_err(|e| invalid("invalid-currency", field, e.to_string()))?;
            out.set("revenue", decimal);
        }
        if let Some(source) = text(&lead, "LeadSource")? {
            out.set("source", lead_source(source));
        }
        let interests = match lead.get("Interests__c") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::TextList(items)) => tags(items.iter().map(String::as_str)),
            Some(Value::Text(s)) => tags(s.split(';')),
            Some(other) => return Err(wrong_type("Interests__c", other, "a text list")),
        };
        if !interests.is_empty() {
            out.set("tags", interests);
        }
        match lead.get("Birthdate") {
            None | Some(Value::Null) => {}
            Some(Value::Date(d)) => out.set("birthday", *d),
            Some(other) => return Err(wrong_type("Birthdate", other, "a date")),
        }
        match lead.get("HasOptedOutOfEmail") {
            None | Some(Value::Null) => {}
            Some(Value::Boolean(opted_out)) => out.set("subscribed", !opted_out),
            Some(other) => return Err(wrong_type("HasOptedOutOfEmail", other, "a boolean")),
        }
        Ok(out)
    }
}

crmsync_sdk::export_mapper!(LeadToContact);

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_sdk::testing::Harness;

    fn map(lead: Record) -> Result<Record, RecordError> {
        Harness::new("{}").map(&LeadToContact, vec![lead]).remove(0)
    }

    #[test]
    fn names_are_trimmed_collapsed_and_capitalised() {
        assert_eq!(normalize_name("  ada   MARIE "), "Ada Marie");
        assert_eq!(normalize_name("o'brien-SMITH"), "O'Brien-Smith");
        assert_eq!(normalize_name("josé"), "José");
    }

    #[test]
    fn currency_amounts() {
        for (raw, want) in [
            ("$1,234,567.5", "1234567.50"),
            ("1 234,50 €", "1234.50"),
            ("EUR 1.234.567", "1234567.00"),
            ("-£12", "-12.00"),
            ("-0", "0.00"),
        ] {
            assert_eq!(parse_currency("f", raw).unwrap(), want, "{raw}");
        }
        for raw in ["12.3456", "lots", "1,,5", "1,"] {
            assert_eq!(parse_currency("f", raw).unwrap_err().code, "invalid-currency", "{raw}");
        }
    }

    #[test]
    fn a_bad_phone_names_the_field() {
        let lead = Record::new(System::Salesforce, "Lead")
            .with("LastName", "Doe")
            .with("Email", "jo@example.com")
            .with("Phone", "12345");
        let err = map(lead).unwrap_err();
        assert_eq!((err.code.as_str(), err.field.as_deref()), ("invalid-phone", Some("Phone")));
    }
}
