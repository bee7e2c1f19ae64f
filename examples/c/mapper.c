// lead-to-contact in C: maps a Salesforce Lead (or Contact) to an
// ActiveCampaign contact. The same mapping is written in every examples/<lang>/;
// examples/fixtures.jsonl pins its behaviour and all five must give identical
// results (see examples/README.md for the rules).
//
// `wit-bindgen c` generates gen/mapper_plugin.{h,c} from the contract: a typed
// value is a tagged union (`value.tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT`,
// `value.val.text`), strings are (ptr, len) and NOT NUL-terminated, an option
// is `{is_some, val}`, a result is `{is_err, val.ok | val.err}`.
//
// Memory: the exported function owns its arguments (it frees them at the end)
// and hands back memory it malloc'ed; the generated cabi_post function frees
// that after the host has copied it.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/mapper_plugin.h"

typedef mapper_plugin_string_t str_t;
typedef crmsync_plugin_types_value_t value_t;
typedef crmsync_plugin_types_field_t field_t;
typedef exports_crmsync_plugin_mapper_sync_record_t record_t;
typedef exports_crmsync_plugin_mapper_result_sync_record_record_error_t result_t;

// ---- byte views and buffers --------------------------------------------------

typedef struct {
  const uint8_t *p;
  size_t n;
} view_t;

static view_t view_of(const str_t *s) { return (view_t){s->ptr, s->len}; }

static bool view_eq(view_t v, const char *s) {
  size_t n = strlen(s);
  return v.n == n && memcmp(v.p, s, n) == 0;
}

// Only ASCII whitespace is trimmed or collapsed, as in every language.
static bool is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
static uint8_t upper(uint8_t c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }

static view_t trim(view_t v) {
  while (v.n > 0 && is_space(v.p[0])) v.p++, v.n--;
  while (v.n > 0 && is_space(v.p[v.n - 1])) v.n--;
  return v;
}

typedef struct {
  uint8_t *p;
  size_t n, cap;
} buf_t;

static void put(buf_t *b, uint8_t c) {
  if (b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 16;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  b->p[b->n++] = c;
}

static void put_str(buf_t *b, const char *s) {
  while (*s) put(b, (uint8_t)*s++);
}

static void put_view(buf_t *b, view_t v) {
  for (size_t i = 0; i < v.n; i++) put(b, v.p[i]);
}

// Moves the buffer's bytes into a contract string.
static str_t take(buf_t *b) {
  str_t s = {b->p, b->n};
  *b = (buf_t){0};
  return s;
}

static str_t dup(const char *s) {
  str_t out;
  mapper_plugin_string_dup(&out, s);
  return out;
}

// ---- errors ---------------------------------------------------------------

typedef struct {
  const char *code;
  const char *field;  // NULL: no field
  char message[200];
} error_t;

static bool fail(error_t *e, const char *code, const char *field, const char *fmt, view_t v) {
  e->code = code;
  e->field = field;
  snprintf(e->message, sizeof e->message, fmt, (int)v.n, (const char *)v.p);
  return false;
}

static const char *kind(const value_t *v) {
  static const char *kinds[] = {"null", "text", "number", "boolean", "date", "datetime", "decimal", "text-list"};
  return v->tag < 8 ? kinds[v->tag] : "unknown";
}

static bool wrong_type(error_t *e, const char *field, const value_t *v, const char *expected) {
  e->code = "wrong-type";
  e->field = field;
  snprintf(e->message, sizeof e->message, "%s must be %s, not %s", field, expected, kind(v));
  return false;
}

// ---- the rules --------------------------------------------------------------

// Trim, collapse whitespace, capitalise each word (after a space, - or ').
static void normalize_name(view_t raw, buf_t *out) {
  bool start = true, pending_space = false;
  for (size_t i = 0; i < raw.n; i++) {
    uint8_t c = raw.p[i];
    if (is_space(c)) {
      pending_space = out->n > 0;
      start = true;
      continue;
    }
    if (pending_space) put(out, ' ');
    pending_space = false;
    put(out, start ? upper(c) : lower(c));
    start = c == '-' || c == '\'';
  }
}

// Writes "-?int.ff" with no leading zeros and no negative zero; false if the
// integer part has more than 15 digits.
static bool to_cents(bool negative, view_t int_digits, view_t frac_digits, buf_t *out) {
  while (int_digits.n > 0 && int_digits.p[0] == '0') int_digits.p++, int_digits.n--;
  if (int_digits.n > 15) return false;
  char frac[3] = {'0', '0', 0};
  for (size_t i = 0; i < frac_digits.n && i < 2; i++) frac[i] = (char)frac_digits.p[i];
  bool zero = int_digits.n == 0 && frac[0] == '0' && frac[1] == '0';
  if (negative && !zero) put(out, '-');
  if (int_digits.n == 0) put(out, '0');
  put_view(out, int_digits);
  put(out, '.');
  put_str(out, frac);
  return true;
}

// Length of a currency symbol or code character at the start (or end) of v: 0 if none.
static size_t currency_prefix(view_t v) {
  if (v.n >= 1 && (is_space(v.p[0]) || v.p[0] == '$' || (v.p[0] >= 'A' && v.p[0] <= 'Z'))) return 1;
  if (v.n >= 3 && memcmp(v.p, "\xe2\x82\xac", 3) == 0) return 3;  // €
  if (v.n >= 2 && memcmp(v.p, "\xc2\xa3", 2) == 0) return 2;      // £
  return 0;
}

static size_t currency_suffix(view_t v) {
  uint8_t c = v.n ? v.p[v.n - 1] : 0;
  if (v.n >= 1 && (is_space(c) || c == '$' || (c >= 'A' && c <= 'Z'))) return 1;
  if (v.n >= 3 && memcmp(v.p + v.n - 3, "\xe2\x82\xac", 3) == 0) return 3;
  if (v.n >= 2 && memcmp(v.p + v.n - 2, "\xc2\xa3", 2) == 0) return 2;
  return 0;
}

static bool is_sep(uint8_t c) { return c == ',' || c == '.' || c == ' '; }

// "$1,234.5", "1 234,50 €", "EUR 1.234.567", "-£12" -> "1234.50" etc.
static bool parse_currency(const char *field, view_t raw, buf_t *out, error_t *e) {
  view_t s = trim(raw);
  bool negative = s.n > 0 && s.p[0] == '-';
  if (negative) s.p++, s.n--;
  for (size_t k; (k = currency_prefix(s));) s.p += k, s.n -= k;
  for (size_t k; (k = currency_suffix(s));) s.n -= k;
  if (!negative && s.n > 0 && s.p[0] == '-') negative = true, s.p++, s.n--;
  if (s.n == 0 || !is_digit(s.p[0]) || !is_digit(s.p[s.n - 1]))
    return fail(e, "invalid-currency", field, "\"%.*s\" is not an amount: it must be digits with an optional currency", raw);
  size_t last_sep = SIZE_MAX;
  for (size_t i = 0; i < s.n; i++) {
    if (is_sep(s.p[i])) {
      if (is_sep(s.p[i - 1])) return fail(e, "invalid-currency", field, "\"%.*s\" is not an amount: two separators in a row", raw);
      last_sep = i;
    } else if (!is_digit(s.p[i])) {
      return fail(e, "invalid-currency", field, "\"%.*s\" is not an amount: unexpected character", raw);
    }
  }
  size_t mark = SIZE_MAX;
  if (last_sep != SIZE_MAX && s.p[last_sep] != ' ') {
    size_t after = s.n - last_sep - 1;
    if (after == 1 || after == 2) mark = last_sep;
    else if (after != 3) return fail(e, "invalid-currency", field, "\"%.*s\" is not an amount: too many digits after the last separator", raw);
  }
  buf_t int_digits = {0}, frac_digits = {0};
  for (size_t i = 0; i < s.n; i++) {
    if (is_digit(s.p[i])) put(mark == SIZE_MAX || i < mark ? &int_digits : &frac_digits, s.p[i]);
  }
  bool ok = to_cents(negative, (view_t){int_digits.p, int_digits.n}, (view_t){frac_digits.p, frac_digits.n}, out);
  free(int_digits.p);
  free(frac_digits.p);
  if (!ok) return fail(e, "invalid-currency", field, "\"%.*s\" is not an amount: more than 15 digits before the decimal mark", raw);
  return true;
}

// A typed decimal ("-12.5"): only normalised to two places.
static bool normalize_decimal(const char *field, view_t text, buf_t *out, error_t *e) {
  view_t s = text;
  bool negative = s.n > 0 && s.p[0] == '-';
  if (negative) s.p++, s.n--;
  const uint8_t *dot = memchr(s.p, '.', s.n);
  view_t int_part = {s.p, dot ? (size_t)(dot - s.p) : s.n};
  view_t frac = dot ? (view_t){dot + 1, s.n - int_part.n - 1} : (view_t){0};
  if (frac.n > 2) return fail(e, "invalid-currency", field, "%.*s has more than two decimal places", text);
  if (!to_cents(negative, int_part, frac, out)) return fail(e, "invalid-currency", field, "%.*s is too large", text);
  return true;
}

static bool valid_email(view_t v) {
  size_t at = SIZE_MAX, ats = 0;
  for (size_t i = 0; i < v.n; i++) {
    if (is_space(v.p[i])) return false;
    if (v.p[i] == '@') ats++, at = i;
  }
  if (ats != 1 || at == 0) return false;
  view_t domain = {v.p + at + 1, v.n - at - 1};
  if (domain.n == 0 || !memchr(domain.p, '.', domain.n)) return false;
  if (domain.p[0] == '.' || domain.p[domain.n - 1] == '.') return false;
  for (size_t i = 1; i < domain.n; i++)
    if (domain.p[i] == '.' && domain.p[i - 1] == '.') return false;
  return true;
}

// Keeps a leading + and the digits; spaces, -, . and brackets go; 6-16 digits.
static bool normalize_phone(view_t raw, buf_t *out, error_t *e) {
  view_t s = trim(raw);
  size_t digits = 0;
  if (s.n > 0 && s.p[0] == '+') put(out, '+'), s.p++, s.n--;
  for (size_t i = 0; i < s.n; i++) {
    uint8_t c = s.p[i];
    if (is_digit(c)) put(out, c), digits++;
    else if (!strchr(" -.()", c) || c == 0) return fail(e, "invalid-phone", "Phone", "\"%.*s\" has a character that is not allowed", raw);
  }
  if (digits < 6 || digits > 16) return fail(e, "invalid-phone", "Phone", "\"%.*s\" must have 6 to 16 digits", raw);
  return true;
}

static const char *lead_source(view_t v) {
  if (view_eq(v, "Web")) return "website";
  if (view_eq(v, "Phone Inquiry")) return "phone";
  if (view_eq(v, "Partner Referral")) return "partner";
  if (view_eq(v, "Trade Show")) return "event";
  return "other";
}

typedef struct {
  str_t *p;
  size_t n;
} tags_t;

static void add_tag(tags_t *tags, view_t item) {
  item = trim(item);
  if (item.n == 0) return;
  buf_t b = {0};
  for (size_t i = 0; i < item.n; i++) put(&b, lower(item.p[i]));
  for (size_t i = 0; i < tags->n; i++) {
    if (tags->p[i].len == b.n && memcmp(tags->p[i].ptr, b.p, b.n) == 0) {
      free(b.p);
      return;
    }
  }
  tags->p = realloc(tags->p, (tags->n + 1) * sizeof(str_t));
  if (!tags->p) abort();
  tags->p[tags->n++] = take(&b);
}

// ---- the record ---------------------------------------------------------------

static const value_t *get(const record_t *r, const char *name) {
  for (size_t i = 0; i < r->fields.len; i++)
    if (view_eq(view_of(&r->fields.ptr[i].name), name)) return &r->fields.ptr[i].value;
  return NULL;
}

static bool absent(const value_t *v) { return v == NULL || v->tag == CRMSYNC_PLUGIN_TYPES_VALUE_NULL; }

// A text field: *out is empty when absent, null or blank; false (wrong-type) when not text.
static bool text(const record_t *r, const char *name, view_t *out, error_t *e) {
  const value_t *v = get(r, name);
  *out = (view_t){0};
  if (absent(v)) return true;
  if (v->tag != CRMSYNC_PLUGIN_TYPES_VALUE_TEXT) return wrong_type(e, name, v, "text");
  *out = trim(view_of(&v->val.text));
  return true;
}

typedef struct {
  field_t items[16];
  size_t n;
} out_fields_t;

static void set_text(out_fields_t *f, const char *name, str_t text) {
  f->items[f->n++] = (field_t){dup(name), {.tag = CRMSYNC_PLUGIN_TYPES_VALUE_TEXT, .val.text = text}};
}

static void release(out_fields_t *f) {
  for (size_t i = 0; i < f->n; i++) crmsync_plugin_types_field_free(&f->items[i]);
  f->n = 0;
}

static bool map_lead(const crmsync_plugin_types_context_t *ctx, const record_t *lead, out_fields_t *f, error_t *e) {
  view_t v;
  buf_t b = {0};
  if (get(lead, "Crash__c")) {
    // A debugging aid: shows how a crash is reported (see the README).
    fprintf(stderr, "lead-to-contact: deliberate crash (Crash__c is set)\n");
    fflush(stderr);
    abort();
  }
  if (ctx->direction != CRMSYNC_PLUGIN_TYPES_DIRECTION_TO_MARKETING)
    return fail(e, "unsupported-direction", NULL, "this mapping only runs towards marketing%.*s", (view_t){0});
  view_t object = view_of(&lead->object_type);
  if (lead->system != CRMSYNC_PLUGIN_TYPES_SYSTEM_SALESFORCE || !(view_eq(object, "Lead") || view_eq(object, "Contact")))
    return fail(e, "unsupported-object", NULL, "only Salesforce Leads and Contacts are mapped, not %.*s", object);

  if (!text(lead, "FirstName", &v, e)) return false;
  if (v.n) normalize_name(v, &b), set_text(f, "firstName", take(&b));

  if (!text(lead, "LastName", &v, e)) return false;
  if (!v.n) return fail(e, "missing-field", "LastName", "LastName is required%.*s", (view_t){0});
  normalize_name(v, &b), set_text(f, "lastName", take(&b));

  if (!text(lead, "Email", &v, e)) return false;
  if (!v.n) return fail(e, "missing-field", "Email", "Email is required%.*s", (view_t){0});
  for (size_t i = 0; i < v.n; i++) put(&b, lower(v.p[i]));
  if (!valid_email((view_t){b.p, b.n})) {
    fail(e, "invalid-email", "Email", "\"%.*s\" is not an email address", (view_t){b.p, b.n});
    free(b.p);
    return false;
  }
  set_text(f, "email", take(&b));

  if (!text(lead, "Phone", &v, e)) return false;
  if (v.n) {
    if (!normalize_phone(v, &b, e)) return free(b.p), false;
    set_text(f, "phone", take(&b));
  }

  const value_t *revenue = get(lead, "AnnualRevenue__c");
  if (!absent(revenue)) {
    bool ok = true, have = true;
    if (revenue->tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT) {
      view_t raw = view_of(&revenue->val.text);
      if (trim(raw).n == 0) have = false;
      else ok = parse_currency("AnnualRevenue__c", raw, &b, e);
    } else if (revenue->tag == CRMSYNC_PLUGIN_TYPES_VALUE_DECIMAL) {
      ok = normalize_decimal("AnnualRevenue__c", view_of(&revenue->val.decimal), &b, e);
    } else {
      return wrong_type(e, "AnnualRevenue__c", revenue, "text or decimal");
    }
    if (!ok) return free(b.p), false;
    if (have) f->items[f->n++] = (field_t){dup("revenue"), {.tag = CRMSYNC_PLUGIN_TYPES_VALUE_DECIMAL, .val.decimal = take(&b)}};
  }

  if (!text(lead, "LeadSource", &v, e)) return false;
  if (v.n) set_text(f, "source", dup(lead_source(v)));

  const value_t *interests = get(lead, "Interests__c");
  if (!absent(interests)) {
    tags_t tags = {0};
    if (interests->tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT_LIST) {
      for (size_t i = 0; i < interests->val.text_list.len; i++) add_tag(&tags, view_of(&interests->val.text_list.ptr[i]));
    } else if (interests->tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT) {
      view_t all = view_of(&interests->val.text);
      size_t start = 0;
      for (size_t i = 0; i <= all.n; i++) {
        if (i == all.n || all.p[i] == ';') add_tag(&tags, (view_t){all.p + start, i - start}), start = i + 1;
      }
    } else {
      return wrong_type(e, "Interests__c", interests, "a text list");
    }
    if (tags.n)
      f->items[f->n++] = (field_t){dup("tags"), {.tag = CRMSYNC_PLUGIN_TYPES_VALUE_TEXT_LIST, .val.text_list = {tags.p, tags.n}}};
  }

  const value_t *birthdate = get(lead, "Birthdate");
  if (!absent(birthdate)) {
    if (birthdate->tag != CRMSYNC_PLUGIN_TYPES_VALUE_DATE) return wrong_type(e, "Birthdate", birthdate, "a date");
    f->items[f->n++] = (field_t){dup("birthday"), {.tag = CRMSYNC_PLUGIN_TYPES_VALUE_DATE, .val.date = birthdate->val.date}};
  }

  const value_t *opted_out = get(lead, "HasOptedOutOfEmail");
  if (!absent(opted_out)) {
    if (opted_out->tag != CRMSYNC_PLUGIN_TYPES_VALUE_BOOLEAN) return wrong_type(e, "HasOptedOutOfEmail", opted_out, "a boolean");
    f->items[f->n++] = (field_t){dup("subscribed"), {.tag = CRMSYNC_PLUGIN_TYPES_VALUE_BOOLEAN, .val.boolean = !opted_out->val.boolean}};
  }
  return true;
}

// The `mapper` role of the contract (interface crmsync:plugin/mapper).
void exports_crmsync_plugin_mapper_map_records(exports_crmsync_plugin_mapper_context_t *ctx,
                                               exports_crmsync_plugin_mapper_list_sync_record_t *records,
                                               exports_crmsync_plugin_mapper_list_result_sync_record_record_error_t *ret) {
  ret->len = records->len;
  ret->ptr = calloc(records->len ? records->len : 1, sizeof(result_t));
  if (!ret->ptr) abort();
  for (size_t i = 0; i < records->len; i++) {
    out_fields_t fields = {.n = 0};
    error_t e = {0};
    result_t *r = &ret->ptr[i];
    if (map_lead(ctx, &records->ptr[i], &fields, &e)) {
      field_t *items = malloc((fields.n ? fields.n : 1) * sizeof(field_t));
      if (!items) abort();
      memcpy(items, fields.items, fields.n * sizeof(field_t));
      r->is_err = false;
      r->val.ok = (record_t){
          .system = CRMSYNC_PLUGIN_TYPES_SYSTEM_ACTIVECAMPAIGN,
          .object_type = dup("contact"),
          .fields = {items, fields.n},
      };
    } else {
      release(&fields);
      r->is_err = true;
      r->val.err.code = dup(e.code);
      r->val.err.message = dup(e.message);
      r->val.err.field.is_some = e.field != NULL;
      if (e.field) r->val.err.field.val = dup(e.field);
    }
  }
  exports_crmsync_plugin_mapper_context_free(ctx);
  exports_crmsync_plugin_mapper_list_sync_record_free(records);
}
