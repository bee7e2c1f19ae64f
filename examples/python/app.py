"""lead-to-contact in Python: maps a Salesforce Lead (or Contact) to an
ActiveCampaign contact. The same mapping is written in every examples/<lang>/;
examples/fixtures.jsonl pins its behaviour and all five must give identical
results (see examples/README.md for the rules).

componentize-py generates the `wit_world` package from the contract: the
contract's typed values are dataclasses (`Value_Text(value=...)`,
`Value_Decimal(value="12.50")`, `Value_Date(Date(y, m, d))`, ...) and each
record's result is `Ok(record)` or `Err(RecordError(...))`.
"""

from typing import List, Optional

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import types as t

SPACE = " \t\n\r"  # only ASCII whitespace is trimmed, as in every language
LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
LEAD_SOURCE = {
    "Web": "website",
    "Phone Inquiry": "phone",
    "Partner Referral": "partner",
    "Trade Show": "event",
}
KIND = {
    t.Value_Null: "null", t.Value_Text: "text", t.Value_Number: "number",
    t.Value_Boolean: "boolean", t.Value_Date: "date", t.Value_Datetime: "datetime",
    t.Value_Decimal: "decimal", t.Value_TextList: "text-list",
}


class Invalid(Exception):
    """A per-record error: becomes Err(RecordError) for this record only."""

    def __init__(self, code: str, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.error = t.RecordError(code=code, message=message, field=field)


def wrong_type(field: str, value: t.Value, expected: str) -> Invalid:
    return Invalid("wrong-type", f"{field} must be {expected}, not {KIND[type(value)]}", field)


def normalize_name(raw: str) -> str:
    """Trim, collapse whitespace, capitalise each word (after space, - or ')."""
    words = []
    for word in raw.replace("\t", " ").replace("\n", " ").replace("\r", " ").split(" "):
        if not word:
            continue
        out, start = [], True
        for c in word:
            out.append(c.translate(UPPER) if start else c.translate(LOWER))
            start = c in "-'"
        words.append("".join(out))
    return " ".join(words)


def to_cents(negative: bool, int_part: str, frac: str) -> Optional[str]:
    int_part = int_part.lstrip("0")
    if len(int_part) > 15:
        return None
    int_part = int_part or "0"
    frac = frac.ljust(2, "0")
    zero = int_part == "0" and frac == "00"
    return ("-" if negative and not zero else "") + f"{int_part}.{frac}"


def parse_currency(field: str, raw: str) -> str:
    def bad(why: str) -> Invalid:
        return Invalid("invalid-currency", f"{raw!r} is not an amount: {why}", field)

    s = raw.strip(SPACE)
    negative = s.startswith("-")
    if negative:
        s = s[1:]
    s = s.strip(SPACE + "$€£ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if not negative and s.startswith("-"):
        negative, s = True, s[1:]
    if not s or not s[0].isascii() or not s[0].isdigit() or not s[-1].isascii() or not s[-1].isdigit():
        raise bad("it must be digits with an optional currency")
    last_sep = None
    for i, c in enumerate(s):
        if c in ",. ":
            if s[i - 1] in ",. ":
                raise bad("two separators in a row")
            last_sep = i
        elif c not in "0123456789":
            raise bad("unexpected character")
    mark = None
    if last_sep is not None and s[last_sep] != " ":
        after = len(s) - last_sep - 1
        if after in (1, 2):
            mark = last_sep
        elif after != 3:
            raise bad("too many digits after the last separator")
    digits = lambda part: "".join(c for c in part if c.isdigit())
    if mark is None:
        int_part, frac = digits(s), ""
    else:
        int_part, frac = digits(s[:mark]), digits(s[mark + 1:])
    cents = to_cents(negative, int_part, frac)
    if cents is None:
        raise bad("more than 15 digits before the decimal mark")
    return cents


def normalize_decimal(field: str, text: str) -> str:
    negative = text.startswith("-")
    int_part, _, frac = text.lstrip("-").partition(".")
    if len(frac) > 2:
        raise Invalid("invalid-currency", f"{text} has more than two decimal places", field)
    cents = to_cents(negative, int_part, frac)
    if cents is None:
        raise Invalid("invalid-currency", f"{text} is too large", field)
    return cents


def valid_email(e: str) -> bool:
    if e.count("@") != 1 or any(c in e for c in SPACE):
        return False
    local, domain = e.split("@")
    return bool(local) and "." in domain and all(domain.split("."))


def normalize_phone(raw: str) -> str:
    s = raw.strip(SPACE)
    plus = "+" if s.startswith("+") else ""
    digits = []
    for c in s[len(plus):]:
        if c in "0123456789":
            digits.append(c)
        elif c not in " -.()":
            raise Invalid("invalid-phone", f"{raw!r} has a {c!r}", "Phone")
    if not 6 <= len(digits) <= 16:
        raise Invalid("invalid-phone", f"{raw!r} must have 6 to 16 digits", "Phone")
    return plus + "".join(digits)


def tags(items: List[str]) -> List[str]:
    out: List[str] = []
    for item in items:
        tag = item.strip(SPACE).translate(LOWER)
        if tag and tag not in out:
            out.append(tag)
    return out


def text(fields: dict, name: str) -> Optional[str]:
    """A text field: None when absent, null or blank; Invalid when not text."""
    value = fields.get(name)
    if value is None or isinstance(value, t.Value_Null):
        return None
    if not isinstance(value, t.Value_Text):
        raise wrong_type(name, value, "text")
    return value.value.strip(SPACE) or None


def map_lead(ctx: t.Context, lead: t.SyncRecord) -> t.SyncRecord:
    fields = {f.name: f.value for f in lead.fields}
    if "Crash__c" in fields:
        # A debugging aid: shows how an exception is reported (see the README).
        raise RuntimeError("lead-to-contact: deliberate crash (Crash__c is set)")
    if ctx.direction != t.Direction.TO_MARKETING:
        raise Invalid("unsupported-direction", "this mapping only runs towards marketing")
    if lead.system != t.System.SALESFORCE or lead.object_type not in ("Lead", "Contact"):
        raise Invalid("unsupported-object", f"only Salesforce Leads and Contacts are mapped, not {lead.object_type}")
    out: List[t.Field] = []
    put = lambda name, value: out.append(t.Field(name=name, value=value))

    first = text(fields, "FirstName")
    if first is not None:
        put("firstName", t.Value_Text(normalize_name(first)))
    last = text(fields, "LastName")
    if last is None:
        raise Invalid("missing-field", "LastName is required", "LastName")
    put("lastName", t.Value_Text(normalize_name(last)))
    email = text(fields, "Email")
    if email is None:
        raise Invalid("missing-field", "Email is required", "Email")
    email = email.translate(LOWER)
    if not valid_email(email):
        raise Invalid("invalid-email", f"{email!r} is not an email address", "Email")
    put("email", t.Value_Text(email))
    phone = text(fields, "Phone")
    if phone is not None:
        put("phone", t.Value_Text(normalize_phone(phone)))

    revenue = fields.get("AnnualRevenue__c")
    if isinstance(revenue, t.Value_Text) and revenue.value.strip(SPACE):
        put("revenue", t.Value_Decimal(parse_currency("AnnualRevenue__c", revenue.value)))
    elif isinstance(revenue, t.Value_Decimal):
        put("revenue", t.Value_Decimal(normalize_decimal("AnnualRevenue__c", revenue.value)))
    elif not (revenue is None or isinstance(revenue, (t.Value_Null, t.Value_Text))):
        raise wrong_type("AnnualRevenue__c", revenue, "text or decimal")

    source = text(fields, "LeadSource")
    if source is not None:
        put("source", t.Value_Text(LEAD_SOURCE.get(source, "other")))

    interests = fields.get("Interests__c")
    found: List[str] = []
    if isinstance(interests, t.Value_TextList):
        found = tags(interests.value)
    elif isinstance(interests, t.Value_Text):
        found = tags(interests.value.split(";"))
    elif not (interests is None or isinstance(interests, t.Value_Null)):
        raise wrong_type("Interests__c", interests, "a text list")
    if found:
        put("tags", t.Value_TextList(found))

    birthdate = fields.get("Birthdate")
    if isinstance(birthdate, t.Value_Date):
        put("birthday", t.Value_Date(birthdate.value))
    elif not (birthdate is None or isinstance(birthdate, t.Value_Null)):
        raise wrong_type("Birthdate", birthdate, "a date")

    opted_out = fields.get("HasOptedOutOfEmail")
    if isinstance(opted_out, t.Value_Boolean):
        put("subscribed", t.Value_Boolean(not opted_out.value))
    elif not (opted_out is None or isinstance(opted_out, t.Value_Null)):
        raise wrong_type("HasOptedOutOfEmail", opted_out, "a boolean")

    return t.SyncRecord(system=t.System.ACTIVECAMPAIGN, object_type="contact", id=None, fields=out, modified_at=None)


class Mapper(exports.Mapper):
    def map_records(self, ctx: t.Context, records: List[t.SyncRecord]) -> List[t.Result[t.SyncRecord, t.RecordError]]:
        results = []
        for record in records:
            try:
                results.append(Ok(map_lead(ctx, record)))
            except Invalid as e:
                results.append(Err(e.error))
        return results
