// {{name}}: a crmsync selector plugin. Decides which Salesforce records sync to
// the marketing platform: here, Leads and Contacts with an email, except those
// whose Email domain is in the config's `exclude_domains`. Change selectRecord
// to your rules and fixtures.jsonl to match.
//
// Contract types in JS: a value is { tag: 'text', val: 'Ada' } ('null', 'number',
// 'boolean', 'date', 'datetime', 'decimal', 'text-list'); a selection is
// { tag: 'sync' }, { tag: 'skip', val: 'why' } or { tag: 'create-as', val: 'lead' | 'contact' };
// the context's `config` is your config section as JSON text.

function text(fields, name) {
  const v = fields.get(name);
  return v && v.tag === 'text' && v.val.trim() !== '' ? v.val.trim() : undefined;
}

function selectRecord(config, record) {
  if (record.objectType !== 'Lead' && record.objectType !== 'Contact') {
    return { tag: 'skip', val: `${record.objectType} is not synced` };
  }
  const fields = new Map(record.fields.map((f) => [f.name, f.value]));
  const email = (text(fields, 'Email') ?? '').toLowerCase();
  if (!email.includes('@')) return { tag: 'skip', val: 'no email address' };
  const domain = email.split('@').pop();
  const excluded = (config.exclude_domains ?? []).map((d) => d.toLowerCase());
  if (excluded.includes(domain)) return { tag: 'skip', val: `${domain} is excluded` };
  return { tag: 'sync' };
}

/** The `selector` role (interface crmsync:plugin/selector): one selection per record, in order. */
export const selector = {
  select(ctx, records) {
    const config = JSON.parse(ctx.config || '{}');
    // A selection has no error: a config this rule cannot use fails the call
    // (the host reports it as an error), never a skip of every record.
    if (!Array.isArray(config.exclude_domains ?? [])) {
      throw new Error('bad-config: exclude_domains must be a list of domains');
    }
    return records.map((record) => selectRecord(config, record));
  },
};
