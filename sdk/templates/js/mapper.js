// {{name}}: a crmsync mapper plugin. Maps a Salesforce Lead or Contact to an
// ActiveCampaign contact; change mapRecord to your rules and fixtures.jsonl to match.
//
// Contract types in JS: a value is { tag: 'text', val: 'Ada' } ('null', 'number',
// 'boolean', 'date' {year, month, day}, 'datetime' {seconds: BigInt, nanoseconds},
// 'decimal' (a string), 'text-list' (an array)); enums are strings; an option
// is the value or undefined; a result is { tag: 'ok' | 'err', val }.

class Invalid extends Error {
  constructor(code, message, field) {
    super(message);
    this.record = { code, message, field };
  }
}

function text(fields, name) {
  const v = fields.get(name);
  return v && v.tag === 'text' && v.val.trim() !== '' ? v.val.trim() : undefined;
}

function mapRecord(ctx, record) {
  const fields = new Map(record.fields.map((f) => [f.name, f.value]));
  const out = [];
  const first = text(fields, 'FirstName');
  if (first !== undefined) out.push({ name: 'firstName', value: { tag: 'text', val: first } });
  const last = text(fields, 'LastName');
  if (last === undefined) throw new Invalid('missing-field', 'LastName is required', 'LastName');
  out.push({ name: 'lastName', value: { tag: 'text', val: last } });
  const email = (text(fields, 'Email') ?? '').toLowerCase();
  if (!email.includes('@')) throw new Invalid('invalid-email', `${JSON.stringify(email)} is not an email address`, 'Email');
  out.push({ name: 'email', value: { tag: 'text', val: email } });
  return { system: 'activecampaign', objectType: 'contact', id: undefined, fields: out, modifiedAt: undefined };
}

/** The `mapper` role (interface crmsync:plugin/mapper): one result per record, in order. */
export const mapper = {
  mapRecords(ctx, records) {
    return records.map((record) => {
      try {
        return { tag: 'ok', val: mapRecord(ctx, record) };
      } catch (e) {
        if (e instanceof Invalid) return { tag: 'err', val: e.record };
        throw e; // a bug: the host reports it with this message and stack
      }
    });
  },
};
