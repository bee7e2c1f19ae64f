"""{{name}}: a crmsync mapper plugin. Maps a Salesforce Lead or Contact to an
ActiveCampaign contact; change map_record to your rules and fixtures.jsonl to match.

Contract types in Python (componentize-py): a value is Value_Text("Ada"),
Value_Decimal("12.50"), Value_Date(Date(y, m, d)), Value_Null(), ...; enums are
Enum members (System.SALESFORCE); an option is the value or None; a result is
Ok(value) or Err(error).
"""

from typing import List

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import types as t


class Invalid(Exception):
    def __init__(self, code: str, message: str, field=None):
        super().__init__(message)
        self.error = t.RecordError(code=code, message=message, field=field)


def text(fields: dict, name: str):
    v = fields.get(name)
    return v.value.strip() or None if isinstance(v, t.Value_Text) else None


def map_record(ctx: t.Context, record: t.SyncRecord) -> t.SyncRecord:
    fields = {f.name: f.value for f in record.fields}
    out: List[t.Field] = []
    first = text(fields, "FirstName")
    if first:
        out.append(t.Field("firstName", t.Value_Text(first)))
    last = text(fields, "LastName")
    if not last:
        raise Invalid("missing-field", "LastName is required", "LastName")
    out.append(t.Field("lastName", t.Value_Text(last)))
    email = (text(fields, "Email") or "").lower()
    if "@" not in email:
        raise Invalid("invalid-email", f"{email!r} is not an email address", "Email")
    out.append(t.Field("email", t.Value_Text(email)))
    return t.SyncRecord(t.System.ACTIVECAMPAIGN, "contact", None, out, None)


class Mapper(exports.Mapper):
    """The `mapper` role (interface crmsync:plugin/mapper): one result per record, in order."""

    def map_records(self, ctx, records):
        results = []
        for record in records:
            try:
                results.append(Ok(map_record(ctx, record)))
            except Invalid as e:
                results.append(Err(e.error))
        return results
