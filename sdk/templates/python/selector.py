"""{{name}}: a crmsync selector plugin. Decides which Salesforce records sync to
the marketing platform: here, Leads and Contacts with an email, except those
whose Email domain is in the config's `exclude_domains`. Change select_record
to your rules and fixtures.jsonl to match.

Contract types in Python (componentize-py): a value is Value_Text("Ada"),
Value_Null(), ...; a selection is Selection_Sync(), Selection_Skip("why") or
Selection_CreateAs(SalesforceObject.LEAD); the context's `config` is your
config section as JSON text.
"""

import json

from wit_world import exports
from wit_world.imports import types as t


def text(fields: dict, name: str):
    v = fields.get(name)
    return v.value.strip() or None if isinstance(v, t.Value_Text) else None


def select_record(config: dict, record: t.SyncRecord) -> t.Selection:
    if record.object_type not in ("Lead", "Contact"):
        return t.Selection_Skip(f"{record.object_type} is not synced")
    fields = {f.name: f.value for f in record.fields}
    email = (text(fields, "Email") or "").lower()
    if "@" not in email:
        return t.Selection_Skip("no email address")
    domain = email.rsplit("@", 1)[1]
    if domain in (d.lower() for d in config.get("exclude_domains", [])):
        return t.Selection_Skip(f"{domain} is excluded")
    return t.Selection_Sync()


class Selector(exports.Selector):
    """The `selector` role (interface crmsync:plugin/selector): one selection per record, in order."""

    def select(self, ctx, records):
        config = json.loads(ctx.config or "{}")
        # A selection has no error: a config this rule cannot use fails the
        # call (the host reports it as an error), never a skip of every record.
        if not isinstance(config.get("exclude_domains", []), list):
            raise ValueError("bad-config: exclude_domains must be a list of domains")
        return [select_record(config, record) for record in records]
