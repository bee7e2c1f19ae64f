// {{name}}: a crmsync selector plugin. Decides which Salesforce records sync to
// the marketing platform: here, Leads and Contacts with an email, except those
// whose Email domain is in the config's `exclude_domains`. Change select_record
// to your rules and fixtures.jsonl to match.
//
// Contract types in C (wit-bindgen c, gen/selector_plugin.h): a selection is a
// tagged union (s.tag == CRMSYNC_PLUGIN_TYPES_SELECTION_SKIP, s.val.skip);
// strings are (ptr, len), NOT NUL-terminated; the context's `config` is your
// config section as JSON text. The exported function owns its arguments (free
// them) and returns malloc'ed memory (the generated cabi_post frees it).

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/selector_plugin.h"

typedef selector_plugin_string_t str_t;
typedef crmsync_plugin_types_field_t field_t;
typedef crmsync_plugin_types_sync_record_t record_t;
typedef crmsync_plugin_types_selection_t selection_t;

static bool is(str_t s, const char *text) { return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0; }

// A text field, trimmed; len 0 when absent, null, blank or not text.
static str_t text(const record_t *r, const char *name) {
  for (size_t i = 0; i < r->fields.len; i++) {
    const field_t *f = &r->fields.ptr[i];
    if (!is(f->name, name)) continue;
    if (f->value.tag != CRMSYNC_PLUGIN_TYPES_VALUE_TEXT) break;
    str_t s = f->value.val.text;
    while (s.len && isspace(s.ptr[0])) s.ptr++, s.len--;
    while (s.len && isspace(s.ptr[s.len - 1])) s.len--;
    return s;
  }
  return (str_t){0};
}

static selection_t skip(const char *why) {
  selection_t s = {.tag = CRMSYNC_PLUGIN_TYPES_SELECTION_SKIP};
  selector_plugin_string_dup(&s.val.skip, why);
  return s;
}

// Whether `domain` is one of the strings in the config's "exclude_domains"
// array (any case). A small scanner, enough for this one key: for richer
// config, use a JSON library (e.g. cJSON) compiled in with the plugin.
static bool excluded(str_t config, const uint8_t *domain, size_t len) {
  const char *key = "\"exclude_domains\"";
  size_t klen = strlen(key);
  for (size_t i = 0; i + klen <= config.len; i++) {
    if (memcmp(config.ptr + i, key, klen) != 0) continue;
    size_t j = i + klen;
    while (j < config.len && (config.ptr[j] == ':' || isspace(config.ptr[j]))) j++;
    if (j >= config.len || config.ptr[j] != '[') {
      // A selection has no error: a config this rule cannot use fails the
      // call (the host reports it as an error), never a skip of every record.
      fprintf(stderr, "bad-config: exclude_domains must be a list of domains\n");
      abort();
    }
    while (j < config.len && config.ptr[j] != ']') {
      if (config.ptr[j++] != '"') continue;
      size_t start = j;
      while (j < config.len && config.ptr[j] != '"') j++;
      if (j - start == len) {
        size_t k = 0;
        while (k < len && tolower(config.ptr[start + k]) == tolower(domain[k])) k++;
        if (k == len) return true;
      }
      j++;
    }
    return false;
  }
  return false;
}

static selection_t select_record(str_t config, const record_t *r) {
  char why[300];
  if (!is(r->object_type, "Lead") && !is(r->object_type, "Contact")) {
    snprintf(why, sizeof why, "%.*s is not synced", (int)r->object_type.len, (const char *)r->object_type.ptr);
    return skip(why);
  }
  str_t email = text(r, "Email");
  const uint8_t *at = email.len ? memchr(email.ptr, '@', email.len) : NULL;
  if (!at) return skip("no email address");
  const uint8_t *domain = at + 1;
  size_t len = email.len - (size_t)(domain - email.ptr);
  if (excluded(config, domain, len)) {
    char lower[256];
    size_t n = len < sizeof lower - 1 ? len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++) lower[i] = (char)tolower(domain[i]);
    snprintf(why, sizeof why, "%.*s is excluded", (int)n, lower);
    return skip(why);
  }
  return (selection_t){.tag = CRMSYNC_PLUGIN_TYPES_SELECTION_SYNC};
}

// The `selector` role (interface crmsync:plugin/selector): one selection per record, in order.
void exports_crmsync_plugin_selector_select(exports_crmsync_plugin_selector_context_t *ctx,
                                            exports_crmsync_plugin_selector_list_sync_record_t *records,
                                            exports_crmsync_plugin_selector_list_selection_t *ret) {
  ret->len = records->len;
  ret->ptr = calloc(records->len ? records->len : 1, sizeof *ret->ptr);
  if (!ret->ptr) abort();
  for (size_t i = 0; i < records->len; i++) ret->ptr[i] = select_record(ctx->config, &records->ptr[i]);
  exports_crmsync_plugin_selector_context_free(ctx);
  exports_crmsync_plugin_selector_list_sync_record_free(records);
}
