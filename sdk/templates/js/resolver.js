// {{name}}: a crmsync resolver plugin. When a record changed on both sides since
// the last sync, decides each field's value: a field changed on one side only
// takes that side; changed on both, the side in the config's `prefer` wins
// (default: the most recent edit). Change resolveConflict to your rules and
// fixtures.jsonl to match.
//
// Contract types in JS: a value is { tag: 'text', val: 'Ada' } ('null', 'number',
// 'boolean', 'date', 'datetime' {seconds: BigInt, nanoseconds}, 'decimal',
// 'text-list'); a side is 'salesforce' or 'marketing'; an option is the value
// or undefined; a result is { tag: 'ok' | 'err', val }.

const same = (a, b) =>
  JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? v.toString() : v)) ===
  JSON.stringify(b, (_, v) => (typeof v === 'bigint' ? v.toString() : v));

const fieldsOf = (record) => new Map((record?.fields ?? []).map((f) => [f.name, f.value]));

function later(a, b) {
  if (!a || !b) return false;
  return a.seconds > b.seconds || (a.seconds === b.seconds && a.nanoseconds > b.nanoseconds);
}

function resolveConflict(config, conflict) {
  const base = fieldsOf(conflict.base);
  const sf = fieldsOf(conflict.salesforce);
  const mk = fieldsOf(conflict.marketing);
  const newer = later(conflict.marketing.modifiedAt, conflict.salesforce.modifiedAt) ? 'marketing' : 'salesforce';
  const prefer = config.prefer ?? {};
  const merged = [];
  const winners = [];
  for (const name of [...new Set([...sf.keys(), ...mk.keys()])].sort()) {
    const [b, s, m] = [base.get(name), sf.get(name), mk.get(name)];
    const sfChanged = !same(s, b);
    const mkChanged = !same(m, b);
    const winner = sfChanged && !mkChanged ? 'salesforce' : mkChanged && !sfChanged ? 'marketing' : prefer[name] ?? newer;
    merged.push({ name, value: (winner === 'salesforce' ? s : m) ?? { tag: 'null' } });
    winners.push({ field: name, winner });
  }
  return { merged, winners };
}

/** The `resolver` role (interface crmsync:plugin/resolver): one result per conflict, in order. */
export const resolver = {
  resolve(ctx, conflicts) {
    const config = JSON.parse(ctx.config || '{}');
    return conflicts.map((conflict) => ({ tag: 'ok', val: resolveConflict(config, conflict) }));
  },
};
