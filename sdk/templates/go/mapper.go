// {{name}}: a crmsync mapper plugin (Go support is EXPERIMENTAL: see README.md).
// Maps a Salesforce Lead or Contact to an ActiveCampaign contact; change
// mapRecord to your rules and fixtures.jsonl to match.
//
// Contract types in Go (wit-bindgen go): a value is types.Value with Tag()
// (types.Value_Text, ...) and accessors (Text(), Decimal(), Date(), ...), built
// with types.MakeValueText(...); an option is witTypes.Option[T]; a result is
// witTypes.Ok/Err. build.sh copies this file over the generated stub.
// Argument strings live in a reused arena: never keep them beyond the call.
package export_crmsync_plugin_mapper

import (
	"strings"

	types "wit_component/crmsync_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type result = witTypes.Result[types.SyncRecord, types.RecordError]

func text(fields map[string]types.Value, name string) string {
	if v, ok := fields[name]; ok && v.Tag() == types.Value_Text {
		return strings.TrimSpace(v.Text())
	}
	return ""
}

func fail(code, message, field string) result {
	return witTypes.Err[types.SyncRecord](types.RecordError{Code: code, Message: message, Field: witTypes.Some(field)})
}

func mapRecord(ctx types.Context, record types.SyncRecord) result {
	fields := map[string]types.Value{}
	for _, f := range record.Fields {
		fields[f.Name] = f.Value
	}
	var out []types.Field
	if first := text(fields, "FirstName"); first != "" {
		out = append(out, types.Field{Name: "firstName", Value: types.MakeValueText(first)})
	}
	last := text(fields, "LastName")
	if last == "" {
		return fail("missing-field", "LastName is required", "LastName")
	}
	out = append(out, types.Field{Name: "lastName", Value: types.MakeValueText(last)})
	email := strings.ToLower(text(fields, "Email"))
	if !strings.Contains(email, "@") {
		return fail("invalid-email", "Email is not an email address", "Email")
	}
	out = append(out, types.Field{Name: "email", Value: types.MakeValueText(email)})
	return witTypes.Ok[types.SyncRecord, types.RecordError](types.SyncRecord{
		System:     types.System_Activecampaign,
		ObjectType: "contact",
		Id:         witTypes.None[string](),
		Fields:     out,
		ModifiedAt: witTypes.None[types.Datetime](),
	})
}

// MapRecords is the `mapper` role (interface crmsync:plugin/mapper): one result per record, in order.
func MapRecords(ctx types.Context, records []types.SyncRecord) []result {
	results := make([]result, 0, len(records))
	for _, record := range records {
		results = append(results, mapRecord(ctx, record))
	}
	return results
}
