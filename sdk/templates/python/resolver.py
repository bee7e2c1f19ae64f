"""{{name}}: a crmsync resolver plugin. When a record changed on both sides
since the last sync, decides each field's value: a field changed on one side
only takes that side; changed on both, the side in the config's `prefer` wins
(default: the most recent edit). Change resolve_conflict to your rules and
fixtures.jsonl to match.

Contract types in Python (componentize-py): a value is Value_Text("Ada"),
Value_Null(), ...; a side is Side.SALESFORCE or Side.MARKETING; an option is the
value or None; a result is Ok(value) or Err(error).
"""

import json

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports import types as t

SIDES = {"salesforce": t.Side.SALESFORCE, "marketing": t.Side.MARKETING}


def fields_of(record):
    return {f.name: f.value for f in record.fields} if record else {}


def stamp(record):
    m = record.modified_at
    return (m.seconds, m.nanoseconds) if m else None


def resolve_conflict(config: dict, conflict: t.Conflict) -> t.Resolution:
    base, sf, mk = fields_of(conflict.base), fields_of(conflict.salesforce), fields_of(conflict.marketing)
    s_at, m_at = stamp(conflict.salesforce), stamp(conflict.marketing)
    newer = t.Side.MARKETING if s_at and m_at and m_at > s_at else t.Side.SALESFORCE
    prefer = {k: SIDES[v] for k, v in config.get("prefer", {}).items()}
    merged, winners = [], []
    for name in sorted(set(sf) | set(mk)):
        b, s, m = base.get(name), sf.get(name), mk.get(name)
        if s != b and m == b:
            winner = t.Side.SALESFORCE
        elif m != b and s == b:
            winner = t.Side.MARKETING
        else:
            winner = prefer.get(name, newer)
        value = s if winner == t.Side.SALESFORCE else m
        merged.append(t.Field(name, value if value is not None else t.Value_Null()))
        winners.append(t.FieldWinner(name, winner))
    return t.Resolution(merged, winners)


class Resolver(exports.Resolver):
    """The `resolver` role (interface crmsync:plugin/resolver): one result per conflict, in order."""

    def resolve(self, ctx, conflicts):
        config = json.loads(ctx.config or "{}")
        return [Ok(resolve_conflict(config, c)) for c in conflicts]
