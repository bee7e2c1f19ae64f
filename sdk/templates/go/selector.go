// {{name}}: a crmsync selector plugin (Go support is EXPERIMENTAL: see README.md).
// Decides which Salesforce records sync to the marketing platform: here, Leads
// and Contacts with an email, except those whose Email domain is in the
// config's `exclude_domains`. Change selectRecord to your rules and
// fixtures.jsonl to match.
//
// Contract types in Go (wit-bindgen go): a selection is built with
// types.MakeSelectionSync(), types.MakeSelectionSkip("why") or
// types.MakeSelectionCreateAs(types.SalesforceObject_Lead); the context's
// Config is your config section as JSON text. build.sh copies this file over
// the generated stub. Argument strings live in a reused arena: never keep
// them beyond the call.
package export_crmsync_plugin_selector

import (
	"encoding/json"
	"fmt"
	"strings"

	types "wit_component/crmsync_plugin_types"
)

// Config is your config section: {"exclude_domains": ["example.org"]}.
type Config struct {
	ExcludeDomains []string `json:"exclude_domains"`
}

func selectRecord(config Config, record types.SyncRecord) types.Selection {
	if record.ObjectType != "Lead" && record.ObjectType != "Contact" {
		return types.MakeSelectionSkip(fmt.Sprintf("%s is not synced", record.ObjectType))
	}
	email := ""
	for _, f := range record.Fields {
		if f.Name == "Email" && f.Value.Tag() == types.Value_Text {
			email = strings.ToLower(strings.TrimSpace(f.Value.Text()))
		}
	}
	at := strings.LastIndex(email, "@")
	if at < 0 {
		return types.MakeSelectionSkip("no email address")
	}
	domain := email[at+1:]
	for _, d := range config.ExcludeDomains {
		if strings.EqualFold(d, domain) {
			return types.MakeSelectionSkip(fmt.Sprintf("%s is excluded", domain))
		}
	}
	return types.MakeSelectionSync()
}

// Select is the `selector` role (interface crmsync:plugin/selector): one selection per record, in order.
func Select(ctx types.Context, records []types.SyncRecord) []types.Selection {
	var config Config
	if err := json.Unmarshal([]byte(ctx.Config), &config); err != nil {
		// A selection has no error: a config this rule cannot use fails the
		// call (the host reports it as an error), never a skip of every record.
		panic("bad-config: " + err.Error())
	}
	out := make([]types.Selection, 0, len(records))
	for _, record := range records {
		out = append(out, selectRecord(config, record))
	}
	return out
}
