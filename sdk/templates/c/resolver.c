// {{name}}: a crmsync resolver plugin. When a record changed on both sides since
// the last sync, decides each field's value: a field changed on one side only
// takes that side; changed on both, the side in the config's `prefer` wins
// (default: the most recent edit). Change resolve_conflict to your rules and
// fixtures.jsonl to match.
//
// Contract types in C (wit-bindgen c, gen/resolver_plugin.h): a value is a
// tagged union (v.tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT, v.val.text); strings
// are (ptr, len), NOT NUL-terminated; an option is {is_some, val}; a result is
// {is_err, val.ok | val.err}. The exported function owns its arguments (free
// them) and returns malloc'ed memory (the generated cabi_post frees it).

#include <stdlib.h>
#include <string.h>

#include "gen/resolver_plugin.h"

typedef resolver_plugin_string_t str_t;
typedef crmsync_plugin_types_field_t field_t;
typedef crmsync_plugin_types_value_t value_t;
typedef crmsync_plugin_types_sync_record_t record_t;
typedef crmsync_plugin_types_side_t side_t;

enum { SALESFORCE = CRMSYNC_PLUGIN_TYPES_SIDE_SALESFORCE, MARKETING = CRMSYNC_PLUGIN_TYPES_SIDE_MARKETING };

static bool same_str(str_t a, str_t b) { return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0; }

static str_t dup_str(str_t s) {
  str_t out;
  resolver_plugin_string_dup_n(&out, (const char *)s.ptr, s.len);
  return out;
}

// The field's value in a record, or NULL when the record lacks it.
static const value_t *get(const record_t *r, str_t name) {
  for (size_t i = 0; r && i < r->fields.len; i++)
    if (same_str(r->fields.ptr[i].name, name)) return &r->fields.ptr[i].value;
  return NULL;
}

// Two values are the same (an absent field and null are the same).
static bool same(const value_t *a, const value_t *b) {
  if (!a || !b) {
    const value_t *v = a ? a : b;
    return !v || v->tag == CRMSYNC_PLUGIN_TYPES_VALUE_NULL;
  }
  if (a->tag != b->tag) return false;
  switch (a->tag) {
    case CRMSYNC_PLUGIN_TYPES_VALUE_NULL: return true;
    case CRMSYNC_PLUGIN_TYPES_VALUE_TEXT: return same_str(a->val.text, b->val.text);
    case CRMSYNC_PLUGIN_TYPES_VALUE_NUMBER: return a->val.number == b->val.number;
    case CRMSYNC_PLUGIN_TYPES_VALUE_BOOLEAN: return a->val.boolean == b->val.boolean;
    case CRMSYNC_PLUGIN_TYPES_VALUE_DATE:
      return a->val.date.year == b->val.date.year && a->val.date.month == b->val.date.month &&
             a->val.date.day == b->val.date.day;
    case CRMSYNC_PLUGIN_TYPES_VALUE_DATETIME:
      return a->val.datetime.seconds == b->val.datetime.seconds &&
             a->val.datetime.nanoseconds == b->val.datetime.nanoseconds;
    case CRMSYNC_PLUGIN_TYPES_VALUE_DECIMAL: return same_str(a->val.decimal, b->val.decimal);
    default:
      if (a->val.text_list.len != b->val.text_list.len) return false;
      for (size_t i = 0; i < a->val.text_list.len; i++)
        if (!same_str(a->val.text_list.ptr[i], b->val.text_list.ptr[i])) return false;
      return true;
  }
}

// A deep copy (the inputs are freed before the answer is read).
static value_t copy(const value_t *v) {
  if (!v) return (value_t){.tag = CRMSYNC_PLUGIN_TYPES_VALUE_NULL};
  value_t out = *v;
  if (v->tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT) out.val.text = dup_str(v->val.text);
  if (v->tag == CRMSYNC_PLUGIN_TYPES_VALUE_DECIMAL) out.val.decimal = dup_str(v->val.decimal);
  if (v->tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT_LIST) {
    size_t n = v->val.text_list.len;
    out.val.text_list.ptr = calloc(n ? n : 1, sizeof(str_t));
    if (!out.val.text_list.ptr) abort();
    for (size_t i = 0; i < n; i++) out.val.text_list.ptr[i] = dup_str(v->val.text_list.ptr[i]);
  }
  return out;
}

// The side the config's "prefer" object names for `field`, or -1. A small
// scanner, enough for this one key: for richer config, use a JSON library
// (e.g. cJSON) compiled in with the plugin.
static int preferred(str_t config, str_t field) {
  const char *key = "\"prefer\"";
  const uint8_t *p = config.ptr, *end = config.ptr + config.len;
  size_t klen = strlen(key);
  for (; p + klen <= end; p++) {
    if (memcmp(p, key, klen) != 0) continue;
    p += klen;
    while (p < end && *p != '{') p++;
    while (p < end && *p != '}') {
      if (*p++ != '"') continue;
      const uint8_t *name = p;
      while (p < end && *p != '"') p++;
      bool match = (size_t)(p - name) == field.len && memcmp(name, field.ptr, field.len) == 0;
      p++;
      while (p < end && *p != '"') p++;  // the side, quoted
      const uint8_t *side = ++p;
      while (p < end && *p != '"') p++;
      if (match) return (size_t)(p - side) == 9 && memcmp(side, "marketing", 9) == 0 ? MARKETING : SALESFORCE;
      p++;
    }
    return -1;
  }
  return -1;
}

static bool later(const record_t *a, const record_t *b) {
  if (!a->modified_at.is_some || !b->modified_at.is_some) return false;
  const crmsync_plugin_types_datetime_t *x = &a->modified_at.val, *y = &b->modified_at.val;
  return x->seconds > y->seconds || (x->seconds == y->seconds && x->nanoseconds > y->nanoseconds);
}

static void resolve_conflict(str_t config, const crmsync_plugin_types_conflict_t *c,
                             crmsync_plugin_types_resolution_t *out) {
  const record_t *base = c->base.is_some ? &c->base.val : NULL, *sf = &c->salesforce, *mk = &c->marketing;
  side_t newer = later(mk, sf) ? MARKETING : SALESFORCE;
  size_t cap = sf->fields.len + mk->fields.len, n = 0;
  out->merged.ptr = calloc(cap ? cap : 1, sizeof(field_t));
  out->winners.ptr = calloc(cap ? cap : 1, sizeof(crmsync_plugin_types_field_winner_t));
  if (!out->merged.ptr || !out->winners.ptr) abort();
  for (size_t i = 0; i < cap; i++) {
    str_t name = i < sf->fields.len ? sf->fields.ptr[i].name : mk->fields.ptr[i - sf->fields.len].name;
    if (i >= sf->fields.len && get(sf, name)) continue;  // seen with the Salesforce fields
    const value_t *b = get(base, name), *s = get(sf, name), *m = get(mk, name);
    bool s_changed = !same(s, b), m_changed = !same(m, b);
    int prefer = preferred(config, name);
    side_t winner = s_changed && !m_changed   ? SALESFORCE
                    : m_changed && !s_changed ? MARKETING
                    : prefer >= 0             ? (side_t)prefer
                                              : newer;
    out->merged.ptr[n] = (field_t){dup_str(name), copy(winner == SALESFORCE ? s : m)};
    out->winners.ptr[n] = (crmsync_plugin_types_field_winner_t){dup_str(name), winner};
    n++;
  }
  out->merged.len = out->winners.len = n;
}

// The `resolver` role (interface crmsync:plugin/resolver): one result per conflict, in order.
void exports_crmsync_plugin_resolver_resolve(
    exports_crmsync_plugin_resolver_context_t *ctx, exports_crmsync_plugin_resolver_list_conflict_t *conflicts,
    exports_crmsync_plugin_resolver_list_result_resolution_record_error_t *ret) {
  ret->len = conflicts->len;
  ret->ptr = calloc(conflicts->len ? conflicts->len : 1, sizeof *ret->ptr);
  if (!ret->ptr) abort();
  for (size_t i = 0; i < conflicts->len; i++) {
    ret->ptr[i].is_err = false;
    resolve_conflict(ctx->config, &conflicts->ptr[i], &ret->ptr[i].val.ok);
  }
  exports_crmsync_plugin_resolver_context_free(ctx);
  exports_crmsync_plugin_resolver_list_conflict_free(conflicts);
}
