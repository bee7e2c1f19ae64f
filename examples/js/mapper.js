// lead-to-contact in JavaScript: maps a Salesforce Lead (or Contact) to an
// ActiveCampaign contact. The same mapping is written in every examples/<lang>/;
// examples/fixtures.jsonl pins its behaviour and all five must give identical
// results (see examples/README.md for the rules).
//
// componentize-js maps the contract to plain JS: a typed value is
// `{ tag: 'text', val: 'Ada' }`, `{ tag: 'decimal', val: '12.50' }`,
// `{ tag: 'date', val: { year, month, day } }`, `{ tag: 'null' }`; an enum is a
// string ('salesforce', 'to-marketing'); an option is the value or undefined;
// each record's result is `{ tag: 'ok', val: record }` or `{ tag: 'err', val: error }`.

const SPACE = ' \t\n\r'; // only ASCII whitespace is trimmed, as in every language
const LEAD_SOURCE = new Map([
  ['Web', 'website'],
  ['Phone Inquiry', 'phone'],
  ['Partner Referral', 'partner'],
  ['Trade Show', 'event'],
]);

/** A per-record error: becomes `{ tag: 'err' }` for this record only. */
class Invalid extends Error {
  constructor(code, message, field) {
    super(message);
    this.record = { code, message, field };
  }
}

const wrongType = (field, value, expected) =>
  new Invalid('wrong-type', `${field} must be ${expected}, not ${value.tag}`, field);

function trim(s, extra = '') {
  const strip = SPACE + extra;
  let a = 0;
  let b = s.length;
  while (a < b && strip.includes(s[a])) a++;
  while (b > a && strip.includes(s[b - 1])) b--;
  return s.slice(a, b);
}
const lower = (s) => s.replace(/[A-Z]+/g, (c) => c.toLowerCase());
// One character: ASCII letters only.
const upperChar = (c) => (c >= 'a' && c <= 'z' ? String.fromCharCode(c.charCodeAt(0) - 32) : c);
const lowerChar = (c) => (c >= 'A' && c <= 'Z' ? String.fromCharCode(c.charCodeAt(0) + 32) : c);
const isDigit = (c) => c >= '0' && c <= '9';

/** Trim, collapse whitespace, capitalise each word (after space, - or '). */
export function normalizeName(raw) {
  return raw
    .split(/[ \t\n\r]+/)
    .filter((w) => w.length > 0)
    .map((word) => {
      let out = '';
      let start = true;
      for (const c of word) {
        out += start ? upperChar(c) : lowerChar(c);
        start = c === '-' || c === "'";
      }
      return out;
    })
    .join(' ');
}

function toCents(negative, int, frac) {
  int = int.replace(/^0+/, '');
  if (int.length > 15) return null;
  if (int === '') int = '0';
  frac = frac.padEnd(2, '0');
  const zero = int === '0' && frac === '00';
  return `${negative && !zero ? '-' : ''}${int}.${frac}`;
}

export function parseCurrency(field, raw) {
  const bad = (why) => new Invalid('invalid-currency', `${JSON.stringify(raw)} is not an amount: ${why}`, field);
  let s = trim(raw);
  let negative = s.startsWith('-');
  if (negative) s = s.slice(1);
  s = trim(s, '$€£ABCDEFGHIJKLMNOPQRSTUVWXYZ');
  if (!negative && s.startsWith('-')) {
    negative = true;
    s = s.slice(1);
  }
  if (s === '' || !isDigit(s[0]) || !isDigit(s[s.length - 1])) {
    throw bad('it must be digits with an optional currency');
  }
  const isSep = (c) => c === ',' || c === '.' || c === ' ';
  let lastSep = -1;
  for (let i = 0; i < s.length; i++) {
    if (isSep(s[i])) {
      if (isSep(s[i - 1])) throw bad('two separators in a row');
      lastSep = i;
    } else if (!isDigit(s[i])) {
      throw bad('unexpected character');
    }
  }
  let mark = -1;
  if (lastSep >= 0 && s[lastSep] !== ' ') {
    const after = s.length - lastSep - 1;
    if (after === 1 || after === 2) mark = lastSep;
    else if (after !== 3) throw bad('too many digits after the last separator');
  }
  const digits = (part) => part.replace(/[^0-9]/g, '');
  const cents =
    mark < 0
      ? toCents(negative, digits(s), '')
      : toCents(negative, digits(s.slice(0, mark)), digits(s.slice(mark + 1)));
  if (cents === null) throw bad('more than 15 digits before the decimal mark');
  return cents;
}

function normalizeDecimal(field, text) {
  const negative = text.startsWith('-');
  const [int, frac = ''] = text.replace(/^-/, '').split('.');
  if (frac.length > 2) throw new Invalid('invalid-currency', `${text} has more than two decimal places`, field);
  const cents = toCents(negative, int, frac);
  if (cents === null) throw new Invalid('invalid-currency', `${text} is too large`, field);
  return cents;
}

function validEmail(e) {
  const parts = e.split('@');
  if (parts.length !== 2 || [...e].some((c) => SPACE.includes(c))) return false;
  const [local, domain] = parts;
  return local.length > 0 && domain.includes('.') && domain.split('.').every((l) => l.length > 0);
}

function normalizePhone(raw) {
  const s = trim(raw);
  const plus = s.startsWith('+') ? '+' : '';
  let digits = '';
  for (const c of s.slice(plus.length)) {
    if (isDigit(c)) digits += c;
    else if (!' -.()'.includes(c)) throw new Invalid('invalid-phone', `${JSON.stringify(raw)} has a '${c}'`, 'Phone');
  }
  if (digits.length < 6 || digits.length > 16) {
    throw new Invalid('invalid-phone', `${JSON.stringify(raw)} must have 6 to 16 digits`, 'Phone');
  }
  return plus + digits;
}

function tags(items) {
  const out = [];
  for (const item of items) {
    const tag = lower(trim(item));
    if (tag !== '' && !out.includes(tag)) out.push(tag);
  }
  return out;
}

const absent = (v) => v === undefined || v.tag === 'null';

/** A text field: undefined when absent, null or blank; Invalid when not text. */
function text(fields, name) {
  const v = fields.get(name);
  if (absent(v)) return undefined;
  if (v.tag !== 'text') throw wrongType(name, v, 'text');
  const s = trim(v.val);
  return s === '' ? undefined : s;
}

function mapLead(ctx, lead) {
  const fields = new Map(lead.fields.map((f) => [f.name, f.value]));
  if (fields.has('Crash__c')) {
    // A debugging aid: shows how an exception is reported (see the README).
    throw new Error('lead-to-contact: deliberate crash (Crash__c is set)');
  }
  if (ctx.direction !== 'to-marketing') {
    throw new Invalid('unsupported-direction', 'this mapping only runs towards marketing');
  }
  if (lead.system !== 'salesforce' || !['Lead', 'Contact'].includes(lead.objectType)) {
    throw new Invalid('unsupported-object', `only Salesforce Leads and Contacts are mapped, not ${lead.objectType}`);
  }
  const out = [];
  const put = (name, tag, val) => out.push({ name, value: { tag, val } });

  const first = text(fields, 'FirstName');
  if (first !== undefined) put('firstName', 'text', normalizeName(first));
  const last = text(fields, 'LastName');
  if (last === undefined) throw new Invalid('missing-field', 'LastName is required', 'LastName');
  put('lastName', 'text', normalizeName(last));
  let email = text(fields, 'Email');
  if (email === undefined) throw new Invalid('missing-field', 'Email is required', 'Email');
  email = lower(email);
  if (!validEmail(email)) throw new Invalid('invalid-email', `${JSON.stringify(email)} is not an email address`, 'Email');
  put('email', 'text', email);
  const phone = text(fields, 'Phone');
  if (phone !== undefined) put('phone', 'text', normalizePhone(phone));

  const revenue = fields.get('AnnualRevenue__c');
  if (!absent(revenue)) {
    if (revenue.tag === 'text') {
      if (trim(revenue.val) !== '') put('revenue', 'decimal', parseCurrency('AnnualRevenue__c', revenue.val));
    } else if (revenue.tag === 'decimal') {
      put('revenue', 'decimal', normalizeDecimal('AnnualRevenue__c', revenue.val));
    } else {
      throw wrongType('AnnualRevenue__c', revenue, 'text or decimal');
    }
  }

  const source = text(fields, 'LeadSource');
  if (source !== undefined) put('source', 'text', LEAD_SOURCE.get(source) ?? 'other');

  const interests = fields.get('Interests__c');
  let found = [];
  if (!absent(interests)) {
    if (interests.tag === 'text-list') found = tags(interests.val);
    else if (interests.tag === 'text') found = tags(interests.val.split(';'));
    else throw wrongType('Interests__c', interests, 'a text list');
  }
  if (found.length > 0) put('tags', 'text-list', found);

  const birthdate = fields.get('Birthdate');
  if (!absent(birthdate)) {
    if (birthdate.tag !== 'date') throw wrongType('Birthdate', birthdate, 'a date');
    put('birthday', 'date', birthdate.val);
  }

  const optedOut = fields.get('HasOptedOutOfEmail');
  if (!absent(optedOut)) {
    if (optedOut.tag !== 'boolean') throw wrongType('HasOptedOutOfEmail', optedOut, 'a boolean');
    put('subscribed', 'boolean', !optedOut.val);
  }

  return { system: 'activecampaign', objectType: 'contact', id: undefined, fields: out, modifiedAt: undefined };
}

/** The `mapper` role of the contract (interface crmsync:plugin/mapper). */
export const mapper = {
  mapRecords(ctx, records) {
    return records.map((record) => {
      try {
        return { tag: 'ok', val: mapLead(ctx, record) };
      } catch (e) {
        if (e instanceof Invalid) return { tag: 'err', val: e.record };
        throw e;
      }
    });
  },
};
