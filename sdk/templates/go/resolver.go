// {{name}}: a crmsync resolver plugin (Go support is EXPERIMENTAL: see README.md).
// When a record changed on both sides since the last sync, decides each
// field's value: a field changed on one side only takes that side; changed on
// both, the side in the config's `prefer` wins (default: the most recent
// edit). Change resolveConflict to your rules and fixtures.jsonl to match.
//
// Contract types in Go (wit-bindgen go): a value is types.Value with Tag() and
// accessors; a side is types.Side_Salesforce or types.Side_Marketing; an option
// is witTypes.Option[T]; a result is witTypes.Ok/Err. build.sh copies this
// file over the generated stub. Argument strings live in a reused arena: the
// answer copies what it keeps (copyValue).
package export_crmsync_plugin_resolver

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"

	types "wit_component/crmsync_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type result = witTypes.Result[types.Resolution, types.RecordError]

// Config is your config section: {"prefer": {"Phone": "salesforce"}}.
type Config struct {
	Prefer map[string]string `json:"prefer"`
}

func fieldsOf(r types.SyncRecord) map[string]types.Value {
	out := map[string]types.Value{}
	for _, f := range r.Fields {
		out[f.Name] = f.Value
	}
	return out
}

// same: an absent field and null are the same.
func same(a, b types.Value, hasA, hasB bool) bool {
	if !hasA {
		a = types.MakeValueNull()
	}
	if !hasB {
		b = types.MakeValueNull()
	}
	return reflect.DeepEqual(a, b)
}

func copyValue(v types.Value) types.Value {
	switch v.Tag() {
	case types.Value_Text:
		return types.MakeValueText(strings.Clone(v.Text()))
	case types.Value_Decimal:
		return types.MakeValueDecimal(strings.Clone(v.Decimal()))
	case types.Value_TextList:
		list := make([]string, len(v.TextList()))
		for i, s := range v.TextList() {
			list[i] = strings.Clone(s)
		}
		return types.MakeValueTextList(list)
	}
	return v
}

func later(a, b witTypes.Option[types.Datetime]) bool {
	if a.IsNone() || b.IsNone() {
		return false
	}
	x, y := a.Some(), b.Some()
	return x.Seconds > y.Seconds || (x.Seconds == y.Seconds && x.Nanoseconds > y.Nanoseconds)
}

func resolveConflict(config Config, c types.Conflict) types.Resolution {
	base := map[string]types.Value{}
	if c.Base.IsSome() {
		base = fieldsOf(c.Base.Some())
	}
	sf, mk := fieldsOf(c.Salesforce), fieldsOf(c.Marketing)
	newer := types.Side_Salesforce
	if later(c.Marketing.ModifiedAt, c.Salesforce.ModifiedAt) {
		newer = types.Side_Marketing
	}
	names := []string{}
	for name := range sf {
		names = append(names, name)
	}
	for name := range mk {
		if _, ok := sf[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out types.Resolution
	for _, name := range names {
		b, hasB := base[name]
		s, hasS := sf[name]
		m, hasM := mk[name]
		sChanged, mChanged := !same(s, b, hasS, hasB), !same(m, b, hasM, hasB)
		winner := newer
		switch {
		case sChanged && !mChanged:
			winner = types.Side_Salesforce
		case mChanged && !sChanged:
			winner = types.Side_Marketing
		case config.Prefer[name] == "salesforce":
			winner = types.Side_Salesforce
		case config.Prefer[name] == "marketing":
			winner = types.Side_Marketing
		}
		value, has := s, hasS
		if winner == types.Side_Marketing {
			value, has = m, hasM
		}
		if !has {
			value = types.MakeValueNull()
		}
		name = strings.Clone(name)
		out.Merged = append(out.Merged, types.Field{Name: name, Value: copyValue(value)})
		out.Winners = append(out.Winners, types.FieldWinner{Field: name, Winner: winner})
	}
	return out
}

// Resolve is the `resolver` role (interface crmsync:plugin/resolver): one result per conflict, in order.
func Resolve(ctx types.Context, conflicts []types.Conflict) []result {
	var config Config
	err := json.Unmarshal([]byte(ctx.Config), &config)
	out := make([]result, 0, len(conflicts))
	for _, c := range conflicts {
		if err != nil {
			out = append(out, witTypes.Err[types.Resolution](types.RecordError{
				Code: "bad-config", Message: err.Error(), Field: witTypes.None[string](),
			}))
			continue
		}
		out = append(out, witTypes.Ok[types.Resolution, types.RecordError](resolveConflict(config, c)))
	}
	return out
}
