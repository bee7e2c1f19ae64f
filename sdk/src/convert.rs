//! Typed value helpers: parse and check what marketing platforms hand over as
//! text (currency amounts, dates, booleans, phone numbers, emails), and write
//! typed values back as text. Every parser returns a [`RecordError`] naming
//! what was wrong, never a silent default.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;

use crate::types::{RecordError, Value};

/// Parses a currency amount written by a person: currency symbols or codes,
/// thousands separators (`,` `.` space, apostrophe) and a decimal point or
/// comma. `"$1,234.50"`, `"1 234,50 €"`, `"EUR 1.234,50"`, `"-12"`, `"(5.00)"`.
///
/// A single separator followed by exactly three digits is a thousands
/// separator (`"1,234"` is 1234); otherwise it is the decimal mark.
pub fn parse_currency(text: &str) -> Result<Decimal, RecordError> {
    let t = text.trim();
    let bad = |why: String| RecordError::new("invalid-currency", format!("{t:?} is not an amount: {why}"));
    let (Some(start), Some(last)) =
        (t.find(|c: char| c.is_ascii_digit()), t.rfind(|c: char| c.is_ascii_digit()))
    else {
        return Err(bad("no digits".into()));
    };
    let (prefix, core, suffix) = (&t[..start], &t[start..=last], &t[last + 1..]);
    // Around the number: a currency symbol or code, spaces, a sign or brackets.
    for part in [prefix, suffix] {
        if let Some(c) = part.chars().find(|&c| {
            !(c.is_alphabetic()
                || is_currency_symbol(c)
                || is_space(c)
                || matches!(c, '-' | '\u{2212}' | '+' | '(' | ')'))
        }) {
            return Err(bad(format!("unexpected character {c:?}")));
        }
        if part.chars().filter(|c| c.is_alphabetic()).count() > 3 {
            return Err(bad("unexpected text around the number".into()));
        }
    }
    let negative = prefix.contains(['-', '\u{2212}']) || (prefix.contains('(') && suffix.contains(')'));
    if let Some(c) = core.chars().find(|&c| !(c.is_ascii_digit() || is_separator(c))) {
        return Err(bad(format!("unexpected character {c:?} inside the number")));
    }
    let decimal_mark = match (core.rfind('.'), core.rfind(',')) {
        (Some(d), Some(c)) => Some(if d > c { '.' } else { ',' }),
        (Some(_), None) => single_mark(core, '.'),
        (None, Some(_)) => single_mark(core, ','),
        (None, None) => None,
    };
    let mut canonical = String::with_capacity(core.len() + 1);
    if negative {
        canonical.push('-');
    }
    let mut seen_mark = false;
    for c in core.chars() {
        if c.is_ascii_digit() {
            canonical.push(c);
        } else if Some(c) == decimal_mark {
            if seen_mark {
                return Err(bad("two decimal marks".into()));
            }
            seen_mark = true;
            canonical.push('.');
        }
    }
    canonical.parse::<Decimal>().map_err(|e| bad(e.to_string()))
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}')
}

fn is_separator(c: char) -> bool {
    matches!(c, '.' | ',' | '\'') || is_space(c)
}

/// Whether a lone `.` or `,` (possibly repeated) in `number` is a decimal mark.
fn single_mark(number: &str, mark: char) -> Option<char> {
    if number.matches(mark).count() > 1 {
        return None; // "1.234.567": thousands separators
    }
    let after = number.rsplit(mark).next().unwrap_or("");
    if after.len() == 3 && after.chars().all(|c| c.is_ascii_digit()) { None } else { Some(mark) }
}

fn is_currency_symbol(c: char) -> bool {
    matches!(c, '$' | '€' | '£' | '¥' | '₹' | '₩' | '₽' | '₺' | '₪' | '¢' | '₫' | '฿' | '₱')
}

/// Parses a calendar date written `YYYY-MM-DD` (the only form Brevo accepts back).
pub fn parse_date(text: &str) -> Result<NaiveDate, RecordError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        RecordError::new("invalid-date", format!("{text:?} is not a date in the form YYYY-MM-DD"))
    })
}

/// Parses a date-time with an offset (RFC 3339, or ActiveCampaign's
/// `2026-11-23T10:00:00-05:00`, or `2026-11-23 10:00:00` taken as UTC) into UTC.
pub fn parse_datetime(text: &str) -> Result<DateTime<Utc>, RecordError> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, format) {
            return Ok(dt.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(naive.and_utc());
        }
    }
    Err(RecordError::new(
        "invalid-datetime",
        format!("{text:?} is not a date-time (expected RFC 3339, e.g. 2026-11-23T10:00:00Z)"),
    ))
}

/// Writes a date-time as RFC 3339 in UTC.
pub fn format_datetime(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a boolean: true/false, yes/no, y/n, on/off, 1/0, checked/unchecked (any case).
pub fn parse_bool(text: &str) -> Result<bool, RecordError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" | "1" | "checked" => Ok(true),
        "false" | "no" | "n" | "off" | "0" | "unchecked" | "" => Ok(false),
        _ => Err(RecordError::new("invalid-boolean", format!("{text:?} is not a yes/no value"))),
    }
}

/// Checks a phone number has 6 to 16 digits (what Brevo and the seeds
/// require) and returns it with spaces, dots, dashes and brackets removed,
/// keeping a leading `+`.
pub fn normalize_phone(text: &str) -> Result<String, RecordError> {
    let t = text.trim();
    let mut out = String::with_capacity(t.len());
    for (i, c) in t.chars().enumerate() {
        match c {
            '0'..='9' => out.push(c),
            '+' if i == 0 => out.push(c),
            ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => {
                return Err(RecordError::new(
                    "invalid-phone",
                    format!(
                        "phone number contains {c:?}; only digits, spaces, dots, dashes, brackets and a leading + are allowed"
                    ),
                ));
            }
        }
    }
    let digits = out.chars().filter(char::is_ascii_digit).count();
    if !(6..=16).contains(&digits) {
        return Err(RecordError::new(
            "invalid-phone",
            format!("phone number has {digits} digits; it must have 6 to 16"),
        ));
    }
    Ok(out)
}

/// A phone number tidied without judging it: digits and a leading `+` when
/// it is written with only digits, spaces, dots, dashes and brackets; any
/// other text is kept as written (trimmed). For platforms without a phone rule.
pub fn tidy_phone(text: &str) -> String {
    let t = text.trim();
    let allowed = |(i, c): (usize, char)| {
        c.is_ascii_digit()
            || (c == '+' && i == 0)
            || matches!(c, ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}')
    };
    if t.chars().enumerate().all(allowed) && t.chars().any(|c| c.is_ascii_digit()) {
        t.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect()
    } else {
        t.to_string()
    }
}

/// A phone number for SMS: international format with the country code
/// (`+33612345678` or `0033612345678`), returned as `+` and digits.
pub fn sms_number(text: &str) -> Result<String, RecordError> {
    let phone = normalize_phone(text)?;
    let international = if let Some(rest) = phone.strip_prefix('+') {
        rest.to_string()
    } else if let Some(rest) = phone.strip_prefix("00") {
        rest.to_string()
    } else {
        return Err(RecordError::new(
            "invalid-sms",
            "an SMS number needs its country code, e.g. +33612345678",
        ));
    };
    if international.starts_with('0') || international.len() < 8 || international.len() > 15 {
        return Err(RecordError::new(
            "invalid-sms",
            "an SMS number needs a country code and 8 to 15 digits in all, e.g. +33612345678",
        ));
    }
    Ok(format!("+{international}"))
}

/// Checks an email address's shape (one `@`, a non-empty local part, a domain
/// with a dot, no spaces) and returns it trimmed. Case is kept; compare emails
/// with [`email_key`].
pub fn normalize_email(text: &str) -> Result<String, RecordError> {
    let t = text.trim();
    let bad = |why: &str| RecordError::new("invalid-email", format!("{t:?} is not an email address: {why}"));
    let (local, domain) = t.split_once('@').ok_or_else(|| bad("no @"))?;
    if local.is_empty() || domain.contains('@') {
        return Err(bad("it needs exactly one @ with text before it"));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')) {
        return Err(bad("it contains spaces or forbidden characters"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-')) {
        return Err(bad("the domain is not valid"));
    }
    if t.len() > 254 {
        return Err(bad("longer than 254 characters"));
    }
    Ok(t.to_string())
}

/// The key emails are matched by: trimmed and lowercased.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Splits a Salesforce multi-select picklist (`"a;b;c"`) into a list.
pub fn split_multipicklist(text: &str) -> Vec<String> {
    text.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Joins a list into a Salesforce multi-select picklist value.
pub fn join_multipicklist(items: &[String]) -> String {
    items.join(";")
}

/// Checks a text is at most `max` characters (not bytes).
pub fn check_length(field: &str, text: &str, max: usize) -> Result<(), RecordError> {
    let n = text.chars().count();
    if n > max {
        return Err(RecordError::new(
            "too-long",
            format!("{field} has {n} characters; at most {max} are allowed"),
        )
        .on(field));
    }
    Ok(())
}

/// Reads a value as text for a text field: typed values are written in their
/// canonical text form; lists are `;`-joined.
pub fn to_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn currency_in_every_common_form() {
        for (text, want) in [
            ("$1,234.50", "1234.50"),
            ("1 234,50 €", "1234.50"),
            ("1\u{a0}234,50\u{a0}€", "1234.50"),
            ("EUR 1.234,50", "1234.50"),
            ("1.234.567", "1234567"),
            ("1,234", "1234"),
            ("1,5", "1.5"),
            ("12.3", "12.3"),
            ("-$5", "-5"),
            ("(5.00)", "-5.00"),
            ("CHF 1'234.50", "1234.50"),
            ("£0.99", "0.99"),
            ("1234", "1234"),
        ] {
            assert_eq!(parse_currency(text).unwrap(), dec(want), "{text}");
        }
    }

    #[test]
    fn currency_refuses_what_is_not_an_amount() {
        for text in ["", "abc", "$", "1.2.3,4,5", "12abc34", "1@2"] {
            let err = parse_currency(text).unwrap_err();
            assert_eq!(err.code, "invalid-currency", "{text}");
        }
    }

    #[test]
    fn dates_and_datetimes() {
        assert_eq!(parse_date("1990-09-25").unwrap(), NaiveDate::from_ymd_opt(1990, 9, 25).unwrap());
        assert_eq!(parse_date("25/09/1990").unwrap_err().code, "invalid-date");
        let t = parse_datetime("2026-11-23T10:00:00-05:00").unwrap();
        assert_eq!(format_datetime(&t), "2026-11-23T15:00:00Z");
        assert_eq!(format_datetime(&parse_datetime("2026-11-23 10:00:00").unwrap()), "2026-11-23T10:00:00Z");
        assert_eq!(parse_datetime("yesterday").unwrap_err().code, "invalid-datetime");
    }

    #[test]
    fn booleans() {
        assert!(parse_bool("Yes").unwrap());
        assert!(!parse_bool("0").unwrap());
        assert_eq!(parse_bool("maybe").unwrap_err().code, "invalid-boolean");
    }

    #[test]
    fn phones_need_6_to_16_digits() {
        assert_eq!(normalize_phone("+33 (0)6 12-34.56.78").unwrap(), "+330612345678");
        assert_eq!(normalize_phone("12345").unwrap_err().code, "invalid-phone");
        assert_eq!(normalize_phone("12345678901234567").unwrap_err().code, "invalid-phone");
        assert_eq!(normalize_phone("555-CALL").unwrap_err().code, "invalid-phone");
    }

    #[test]
    fn sms_needs_a_country_code() {
        assert_eq!(sms_number("+33 6 12 34 56 78").unwrap(), "+33612345678");
        assert_eq!(sms_number("0033612345678").unwrap(), "+33612345678");
        assert_eq!(sms_number("06 12 34 56 78").unwrap_err().code, "invalid-sms");
    }

    #[test]
    fn emails() {
        assert_eq!(normalize_email("  Ada@Example.com ").unwrap(), "Ada@Example.com");
        assert_eq!(email_key(" Ada@Example.COM"), "ada@example.com");
        for bad in ["ada", "ada@", "@x.com", "a b@x.com", "a@x", "a@@x.com", "a@x..com"] {
            assert_eq!(normalize_email(bad).unwrap_err().code, "invalid-email", "{bad}");
        }
    }

    #[test]
    fn lengths_count_characters() {
        assert!(check_length("FirstName", &"é".repeat(40), 40).is_ok());
        let err = check_length("FirstName", &"é".repeat(41), 40).unwrap_err();
        assert_eq!((err.code.as_str(), err.field.as_deref()), ("too-long", Some("FirstName")));
    }
}
