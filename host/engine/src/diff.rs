//! What changed, on normalised values. A field counts as changed on one side
//! only when the rules map its current value differently from the value last
//! synced: both go through the same mapper version, so formatting the vendor
//! applies on its side (a phone in E.164, a checkbox as `||Yes||`, a date
//! re-rendered) never reads as an edit, and an idle run writes nothing.
//!
//! The link keeps each side's last synced values in that side's own names;
//! mapping the snapshot of the *source* side gives the base to compare the
//! mapped current record against. When the snapshot cannot be mapped, or a
//! different mapper version wrote the link (a new rule version must apply to
//! existing records), the raw comparison with the other side's snapshot is
//! used instead.

use std::collections::BTreeMap;

use crmsync_core::{Context, Link, Record, Rules, System, Value};

/// Each record's base: its link's source-side snapshot, mapped with the
/// rules now active; `None` where there is no link or no usable base.
pub(crate) fn mapped_bases(
    rules: &dyn Rules,
    ctx: &Context<()>,
    sources: &[Record],
    links: &[Option<Link>],
    source_system: System,
    snapshot: impl Fn(&Link) -> &BTreeMap<String, Value>,
    mapper: &Option<String>,
) -> Vec<Option<BTreeMap<String, Value>>> {
    let mut at = Vec::new();
    let mut bases = Vec::new();
    for (i, (source, link)) in sources.iter().zip(links).enumerate() {
        let Some(link) = link else { continue };
        if link.plugin != *mapper || snapshot(link).is_empty() {
            continue;
        }
        let mut base = Record::new(source_system, source.object_type.clone());
        base.id = source.id.clone();
        base.fields = snapshot(link).clone();
        at.push(i);
        bases.push(base);
    }
    let mut out = vec![None; sources.len()];
    if bases.is_empty() {
        return out;
    }
    let mapped = rules.map(ctx, &bases);
    if mapped.plugin != *mapper {
        return out;
    }
    for (i, result) in at.into_iter().zip(mapped.results) {
        // Compared with targets that were cleaned the same way.
        out[i] = result.ok().map(|mut r| {
            strip_controls(&mut r);
            r.fields
        });
    }
    out
}

/// The mapped fields that changed: against the mapped base where it has the
/// field, else against the target side's snapshot. (A field the echo of a
/// create brings — a Lead's placeholder Company, say — is in the base and
/// so is no change.)
pub(crate) fn changed_fields(
    target: &Record,
    base: Option<&BTreeMap<String, Value>>,
    previous: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    target
        .fields
        .iter()
        .filter(|(k, v)| match base {
            Some(base) if base.contains_key(*k) => !same(base.get(*k), Some(v)),
            _ => !same(previous.get(*k), Some(v)),
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Removes C0 control characters (all but tab, line feed and carriage
/// return) from a record's text values — a NUL in a name must not reach
/// either vendor — and says which fields it cleaned.
pub(crate) fn strip_controls(record: &mut Record) -> Vec<String> {
    let bad = |c: char| c.is_control() && (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r');
    let mut cleaned = Vec::new();
    for (name, value) in record.fields.iter_mut() {
        let dirty = match value {
            Value::Text(t) => t.chars().any(bad),
            Value::TextList(l) => l.iter().any(|t| t.chars().any(bad)),
            _ => false,
        };
        if !dirty {
            continue;
        }
        match value {
            Value::Text(t) => t.retain(|c| !bad(c)),
            Value::TextList(l) => l.iter_mut().for_each(|t| t.retain(|c| !bad(c))),
            _ => {}
        }
        cleaned.push(name.clone());
    }
    cleaned
}

/// [`strip_controls`] on a rule's output, with a warning naming the record
/// and fields (never their values).
pub(crate) fn sanitize(record: &mut Record, source: &Record, report: &mut crate::PassReport) {
    let cleaned = strip_controls(record);
    if cleaned.is_empty() {
        return;
    }
    report.warned(&source.label());
    tracing::warn!(
        record = %source.label(),
        fields = %cleaned.join(", "),
        "control characters removed before writing"
    );
}

/// Consent flows one way only, towards "opted out": a Salesforce opt-out
/// unsubscribes the marketing record; an unsubscribe read from the marketing
/// platform sets the Salesforce opt-out field. Nothing here ever writes a
/// re-subscription or clears an opt-out.
pub(crate) fn opt_out_to_marketing(spec: &crate::ConnectionSpec, source: &Record, target: &mut Record) {
    if let Some(field) = &spec.opt_out_field
        && source.get(field) == Some(&Value::Boolean(true))
    {
        target.set(crmsync_core::connector::fields::UNSUBSCRIBE, Value::Boolean(true));
    }
}

/// See [`opt_out_to_marketing`].
pub(crate) fn opt_out_to_salesforce(spec: &crate::ConnectionSpec, source: &Record, target: &mut Record) {
    if let Some(field) = &spec.opt_out_field
        && source.get(crmsync_core::connector::fields::UNSUBSCRIBE) == Some(&Value::Boolean(true))
    {
        target.set(field.clone(), Value::Boolean(true));
    }
}

/// Equal values, also where a rule and a connector spell one value in two
/// forms: every empty value (null, blank text, empty list) alike; a number
/// alike the decimal of the same value (a mapped number and the decimal a
/// Salesforce number field is read as); a list alike the text that spells
/// the same items (`A;B`, the form a Salesforce multi-select takes in a
/// write, the list the form it is read in), in any order (Salesforce returns
/// them in its picklist's order).
pub(crate) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let empty = |v: Option<&Value>| v.is_none_or(Value::is_empty);
    a == b || (empty(a) && empty(b)) || same_number(a, b) || same_items(a, b)
}

fn same_number(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(n)), Some(Value::Decimal(d)))
        | (Some(Value::Decimal(d)), Some(Value::Number(n))) => {
            d.to_string().parse::<f64>().is_ok_and(|d| d == *n)
        }
        _ => false,
    }
}

fn same_items(a: Option<&Value>, b: Option<&Value>) -> bool {
    let items = |v: &Value| -> Vec<String> {
        let mut items: Vec<String> = match v {
            Value::TextList(l) => l.iter().map(|s| s.trim().to_string()).collect(),
            other => other.to_string().split(';').map(|s| s.trim().to_string()).collect(),
        };
        items.retain(|s| !s.is_empty());
        items.sort();
        items
    };
    match (a, b) {
        (Some(a @ Value::TextList(_)), Some(b @ (Value::TextList(_) | Value::Text(_))))
        | (Some(a @ Value::Text(_)), Some(b @ Value::TextList(_))) => items(a) == items(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_differs_from_the_mapped_base_not_from_the_raw_snapshot() {
        let target =
            Record::new(System::Salesforce, "Lead").with("Phone", "+14155550100").with("LastName", "OneAC");
        let previous: BTreeMap<String, Value> =
            [("Phone".into(), Value::text("+1 415 555 0100")), ("LastName".into(), Value::text("One"))]
                .into();
        let base: BTreeMap<String, Value> =
            [("Phone".into(), Value::text("+14155550100")), ("LastName".into(), Value::text("One"))].into();
        let changed = changed_fields(&target, Some(&base), &previous);
        assert_eq!(changed.keys().collect::<Vec<_>>(), ["LastName"]);
        // A field the base lacks is compared with the snapshot.
        let extra = target.clone().with("Title", "Dr");
        assert_eq!(changed_fields(&extra, Some(&base), &previous).len(), 2);
        // Without a base the raw comparison sees both.
        assert_eq!(changed_fields(&target, None, &previous).len(), 2);
        assert!(same(Some(&Value::Null), Some(&Value::TextList(vec![]))));
    }

    #[test]
    fn a_list_is_the_same_as_the_text_of_its_items_in_any_order() {
        let list = |items: &[&str]| Value::TextList(items.iter().map(|s| s.to_string()).collect());
        assert!(same(Some(&Value::text("A")), Some(&list(&["A"]))));
        assert!(same(Some(&list(&["B", "A"])), Some(&Value::text("A;B"))));
        assert!(same(Some(&list(&["B", "A"])), Some(&list(&["A", "B"]))));
        assert!(!same(Some(&Value::text("A")), Some(&list(&["A", "B", "C"]))));
        assert!(!same(Some(&list(&["A"])), Some(&list(&["A", "B"]))));
        // Two texts are compared as texts.
        assert!(!same(Some(&Value::text("A;B")), Some(&Value::text("B;A"))));
        assert!(!same(Some(&Value::Number(1.0)), Some(&list(&["1"]))));
    }

    #[test]
    fn a_number_is_the_same_as_the_decimal_of_its_value() {
        let decimal = |s: &str| Value::Decimal(s.parse().unwrap());
        assert!(same(Some(&Value::Number(916.25)), Some(&decimal("916.25"))));
        assert!(same(Some(&decimal("916.250")), Some(&Value::Number(916.25))));
        assert!(!same(Some(&Value::Number(916.25)), Some(&decimal("470.25"))));
        assert!(!same(Some(&Value::Number(1.0)), Some(&Value::text("1"))));
        let mut r = Record::new(System::Salesforce, "Lead")
            .with("LastName", "Lo\u{0}ve\u{7}")
            .with("Notes", "a\tb\nc");
        assert_eq!(strip_controls(&mut r), ["LastName"]);
        assert_eq!(r.text("LastName"), Some("Love"));
        assert_eq!(r.text("Notes"), Some("a\tb\nc"));
        assert!(same(None, Some(&Value::text(" "))));
    }
}
