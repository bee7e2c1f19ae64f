// {{name}}: a crmsync mapper plugin. Maps a Salesforce Lead or Contact to an
// ActiveCampaign contact; change map_record to your rules and fixtures.jsonl to match.
//
// Contract types in C (wit-bindgen c, gen/mapper_plugin.h): a value is a tagged
// union (v.tag == CRMSYNC_PLUGIN_TYPES_VALUE_TEXT, v.val.text); strings are
// (ptr, len), NOT NUL-terminated; an option is {is_some, val}; a result is
// {is_err, val.ok | val.err}. The exported function owns its arguments (free
// them) and returns malloc'ed memory (the generated cabi_post frees it).

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "gen/mapper_plugin.h"

typedef mapper_plugin_string_t str_t;
typedef crmsync_plugin_types_field_t field_t;
typedef crmsync_plugin_types_sync_record_t record_t;

static str_t dup(const char *s) {
  str_t out;
  mapper_plugin_string_dup(&out, s);
  return out;
}

static str_t dup_n(const uint8_t *p, size_t n) {
  str_t out;
  mapper_plugin_string_dup_n(&out, (const char *)p, n);
  return out;
}

// A text field, trimmed; len 0 when absent, null, blank or not text.
static str_t text(const record_t *r, const char *name) {
  for (size_t i = 0; i < r->fields.len; i++) {
    const field_t *f = &r->fields.ptr[i];
    if (f->name.len != strlen(name) || memcmp(f->name.ptr, name, f->name.len) != 0) continue;
    if (f->value.tag != CRMSYNC_PLUGIN_TYPES_VALUE_TEXT) break;
    str_t s = f->value.val.text;
    while (s.len && isspace(s.ptr[0])) s.ptr++, s.len--;
    while (s.len && isspace(s.ptr[s.len - 1])) s.len--;
    return s;
  }
  return (str_t){0};
}

static field_t text_field(const char *name, str_t value) {
  return (field_t){dup(name), {.tag = CRMSYNC_PLUGIN_TYPES_VALUE_TEXT, .val.text = value}};
}

static void error(exports_crmsync_plugin_mapper_result_sync_record_record_error_t *r, const char *code,
                  const char *message, const char *field) {
  r->is_err = true;
  r->val.err.code = dup(code);
  r->val.err.message = dup(message);
  r->val.err.field.is_some = true;
  r->val.err.field.val = dup(field);
}

static void map_record(const record_t *in, exports_crmsync_plugin_mapper_result_sync_record_record_error_t *r) {
  str_t first = text(in, "FirstName"), last = text(in, "LastName"), email = text(in, "Email");
  if (!last.len) {
    error(r, "missing-field", "LastName is required", "LastName");
    return;
  }
  if (!email.len || !memchr(email.ptr, '@', email.len)) {
    error(r, "invalid-email", "Email is not an email address", "Email");
    return;
  }
  field_t *fields = calloc(3, sizeof(field_t));
  size_t n = 0;
  if (!fields) abort();
  if (first.len) fields[n++] = text_field("firstName", dup_n(first.ptr, first.len));
  fields[n++] = text_field("lastName", dup_n(last.ptr, last.len));
  str_t lower = dup_n(email.ptr, email.len);
  for (size_t i = 0; i < lower.len; i++) lower.ptr[i] = (uint8_t)tolower(lower.ptr[i]);
  fields[n++] = text_field("email", lower);
  r->is_err = false;
  r->val.ok = (record_t){.system = CRMSYNC_PLUGIN_TYPES_SYSTEM_ACTIVECAMPAIGN, .object_type = dup("contact"), .fields = {fields, n}};
}

// The `mapper` role (interface crmsync:plugin/mapper): one result per record, in order.
void exports_crmsync_plugin_mapper_map_records(exports_crmsync_plugin_mapper_context_t *ctx,
                                               exports_crmsync_plugin_mapper_list_sync_record_t *records,
                                               exports_crmsync_plugin_mapper_list_result_sync_record_record_error_t *ret) {
  ret->len = records->len;
  ret->ptr = calloc(records->len ? records->len : 1, sizeof *ret->ptr);
  if (!ret->ptr) abort();
  for (size_t i = 0; i < records->len; i++) map_record(&records->ptr[i], &ret->ptr[i]);
  exports_crmsync_plugin_mapper_context_free(ctx);
  exports_crmsync_plugin_mapper_list_sync_record_free(records);
}
