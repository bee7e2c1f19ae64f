// lead-to-contact in Go: maps a Salesforce Lead (or Contact) to an
// ActiveCampaign contact. The same mapping is written in every examples/<lang>/;
// examples/fixtures.jsonl pins its behaviour and all five must give identical
// results (see examples/README.md for the rules).
//
// `wit-bindgen go` generates the contract's types: a typed value is
// types.Value with Tag() (types.Value_Text, ...) and accessors (Text(),
// Decimal(), Date(), TextList()), built with types.MakeValueText(...); an
// option is witTypes.Option[T]; each record's result is witTypes.Ok/Err.
//
// build.sh copies this file over the generated stub in
// export_crmsync_plugin_mapper/. Argument strings live in the runtime shim's
// arena (witrt/): never keep them beyond the call.
package export_crmsync_plugin_mapper

import (
	"fmt"
	"strings"

	types "wit_component/crmsync_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type result = witTypes.Result[types.SyncRecord, types.RecordError]

// invalid is a per-record error: it becomes Err(RecordError) for this record only.
type invalid struct {
	code, message, field string
}

func (e *invalid) Error() string { return e.message }

func fail(code, field, format string, args ...any) *invalid {
	return &invalid{code, fmt.Sprintf(format, args...), field}
}

var kinds = []string{"null", "text", "number", "boolean", "date", "datetime", "decimal", "text-list"}

func wrongType(field string, v types.Value, expected string) *invalid {
	return fail("wrong-type", field, "%s must be %s, not %s", field, expected, kinds[v.Tag()])
}

// Only ASCII whitespace is trimmed or collapsed, as in every language.
const space = " \t\n\r"

func isSpace(c byte) bool { return strings.IndexByte(space, c) >= 0 }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// normalizeName trims, collapses whitespace and capitalises each word (a word
// starts after a space, - or '). Only ASCII letters change case.
func normalizeName(raw string) string {
	var out strings.Builder
	for _, word := range strings.FieldsFunc(raw, func(r rune) bool { return r < 128 && isSpace(byte(r)) }) {
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		start := true
		for i := 0; i < len(word); i++ {
			c := word[i]
			switch {
			case start && c >= 'a' && c <= 'z':
				c -= 32
			case !start && c >= 'A' && c <= 'Z':
				c += 32
			}
			out.WriteByte(c)
			start = c == '-' || c == '\''
		}
	}
	return out.String()
}

func toCents(negative bool, intPart, frac string) (string, bool) {
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > 15 {
		return "", false
	}
	if intPart == "" {
		intPart = "0"
	}
	for len(frac) < 2 {
		frac += "0"
	}
	sign := ""
	if negative && !(intPart == "0" && frac == "00") {
		sign = "-"
	}
	return sign + intPart + "." + frac, true
}

func digits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isSep(c byte) bool { return c == ',' || c == '.' || c == ' ' }

// parseCurrency: "$1,234.5", "1 234,50 €", "EUR 1.234.567", "-£12" -> "1234.50" etc.
func parseCurrency(field, raw string) (string, error) {
	bad := func(why string) error { return fail("invalid-currency", field, "%q is not an amount: %s", raw, why) }
	s := strings.Trim(raw, space)
	negative := strings.HasPrefix(s, "-")
	if negative {
		s = s[1:]
	}
	s = strings.Trim(s, space+"$€£ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if !negative && strings.HasPrefix(s, "-") {
		negative, s = true, s[1:]
	}
	if s == "" || !isDigit(s[0]) || !isDigit(s[len(s)-1]) {
		return "", bad("it must be digits with an optional currency")
	}
	lastSep := -1
	for i := 0; i < len(s); i++ {
		if isSep(s[i]) {
			if isSep(s[i-1]) {
				return "", bad("two separators in a row")
			}
			lastSep = i
		} else if !isDigit(s[i]) {
			return "", bad("unexpected character")
		}
	}
	mark := -1
	if lastSep >= 0 && s[lastSep] != ' ' {
		switch len(s) - lastSep - 1 {
		case 1, 2:
			mark = lastSep
		case 3:
		default:
			return "", bad("too many digits after the last separator")
		}
	}
	intPart, frac := digits(s), ""
	if mark >= 0 {
		intPart, frac = digits(s[:mark]), digits(s[mark+1:])
	}
	cents, ok := toCents(negative, intPart, frac)
	if !ok {
		return "", bad("more than 15 digits before the decimal mark")
	}
	return cents, nil
}

// normalizeDecimal: a typed decimal ("-12.5") is only normalised to two places.
func normalizeDecimal(field, text string) (string, error) {
	negative := strings.HasPrefix(text, "-")
	intPart, frac, _ := strings.Cut(strings.TrimPrefix(text, "-"), ".")
	if len(frac) > 2 {
		return "", fail("invalid-currency", field, "%s has more than two decimal places", text)
	}
	cents, ok := toCents(negative, intPart, frac)
	if !ok {
		return "", fail("invalid-currency", field, "%s is too large", text)
	}
	return cents, nil
}

func validEmail(e string) bool {
	if strings.Count(e, "@") != 1 || strings.ContainsAny(e, space) {
		return false
	}
	local, domain, _ := strings.Cut(e, "@")
	if local == "" || !strings.Contains(domain, ".") {
		return false
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" {
			return false
		}
	}
	return true
}

// normalizePhone keeps a leading + and the digits; spaces, -, . and brackets go.
func normalizePhone(raw string) (string, error) {
	s := strings.Trim(raw, space)
	plus := ""
	if strings.HasPrefix(s, "+") {
		plus, s = "+", s[1:]
	}
	var d strings.Builder
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			d.WriteRune(c)
		case strings.ContainsRune(" -.()", c):
		default:
			return "", fail("invalid-phone", "Phone", "%q has a %q", raw, c)
		}
	}
	if d.Len() < 6 || d.Len() > 16 {
		return "", fail("invalid-phone", "Phone", "%q must have 6 to 16 digits", raw)
	}
	return plus + d.String(), nil
}

var leadSource = map[string]string{
	"Web":              "website",
	"Phone Inquiry":    "phone",
	"Partner Referral": "partner",
	"Trade Show":       "event",
}

func tags(items []string) []string {
	out := []string{}
	for _, item := range items {
		tag := lower(strings.Trim(item, space))
		if tag == "" {
			continue
		}
		seen := false
		for _, t := range out {
			seen = seen || t == tag
		}
		if !seen {
			out = append(out, tag)
		}
	}
	return out
}

type lead map[string]types.Value

func absent(v types.Value, ok bool) bool { return !ok || v.Tag() == types.Value_Null }

// text returns a text field trimmed: "" when absent, null or blank; an error when not text.
func (l lead) text(name string) (string, error) {
	v, ok := l[name]
	if absent(v, ok) {
		return "", nil
	}
	if v.Tag() != types.Value_Text {
		return "", wrongType(name, v, "text")
	}
	return strings.Trim(v.Text(), space), nil
}

func mapLead(ctx types.Context, record types.SyncRecord) (types.SyncRecord, error) {
	l := lead{}
	for _, f := range record.Fields {
		l[f.Name] = f.Value
	}
	if _, ok := l["Crash__c"]; ok {
		// A debugging aid: shows how a panic is reported (see the README).
		panic("lead-to-contact: deliberate crash (Crash__c is set)")
	}
	none := types.SyncRecord{}
	if ctx.Direction != types.Direction_ToMarketing {
		return none, fail("unsupported-direction", "", "this mapping only runs towards marketing")
	}
	if record.System != types.System_Salesforce || (record.ObjectType != "Lead" && record.ObjectType != "Contact") {
		return none, fail("unsupported-object", "", "only Salesforce Leads and Contacts are mapped, not %s", record.ObjectType)
	}
	var out []types.Field
	put := func(name string, v types.Value) { out = append(out, types.Field{Name: name, Value: v}) }

	first, err := l.text("FirstName")
	if err != nil {
		return none, err
	}
	if first != "" {
		put("firstName", types.MakeValueText(normalizeName(first)))
	}
	last, err := l.text("LastName")
	if err != nil {
		return none, err
	}
	if last == "" {
		return none, fail("missing-field", "LastName", "LastName is required")
	}
	put("lastName", types.MakeValueText(normalizeName(last)))
	email, err := l.text("Email")
	if err != nil {
		return none, err
	}
	if email == "" {
		return none, fail("missing-field", "Email", "Email is required")
	}
	email = lower(email)
	if !validEmail(email) {
		return none, fail("invalid-email", "Email", "%q is not an email address", email)
	}
	put("email", types.MakeValueText(email))
	phone, err := l.text("Phone")
	if err != nil {
		return none, err
	}
	if phone != "" {
		p, err := normalizePhone(phone)
		if err != nil {
			return none, err
		}
		put("phone", types.MakeValueText(p))
	}

	if v, ok := l["AnnualRevenue__c"]; !absent(v, ok) {
		var cents string
		var err error
		switch v.Tag() {
		case types.Value_Text:
			if strings.Trim(v.Text(), space) != "" {
				cents, err = parseCurrency("AnnualRevenue__c", v.Text())
			}
		case types.Value_Decimal:
			cents, err = normalizeDecimal("AnnualRevenue__c", v.Decimal())
		default:
			err = wrongType("AnnualRevenue__c", v, "text or decimal")
		}
		if err != nil {
			return none, err
		}
		if cents != "" {
			put("revenue", types.MakeValueDecimal(cents))
		}
	}

	source, err := l.text("LeadSource")
	if err != nil {
		return none, err
	}
	if source != "" {
		mapped, ok := leadSource[source]
		if !ok {
			mapped = "other"
		}
		put("source", types.MakeValueText(mapped))
	}

	if v, ok := l["Interests__c"]; !absent(v, ok) {
		var found []string
		switch v.Tag() {
		case types.Value_TextList:
			found = tags(v.TextList())
		case types.Value_Text:
			found = tags(strings.Split(v.Text(), ";"))
		default:
			return none, wrongType("Interests__c", v, "a text list")
		}
		if len(found) > 0 {
			put("tags", types.MakeValueTextList(found))
		}
	}

	if v, ok := l["Birthdate"]; !absent(v, ok) {
		if v.Tag() != types.Value_Date {
			return none, wrongType("Birthdate", v, "a date")
		}
		put("birthday", types.MakeValueDate(v.Date()))
	}

	if v, ok := l["HasOptedOutOfEmail"]; !absent(v, ok) {
		if v.Tag() != types.Value_Boolean {
			return none, wrongType("HasOptedOutOfEmail", v, "a boolean")
		}
		put("subscribed", types.MakeValueBoolean(!v.Boolean()))
	}

	return types.SyncRecord{
		System:     types.System_Activecampaign,
		ObjectType: "contact",
		Id:         witTypes.None[string](),
		Fields:     out,
		ModifiedAt: witTypes.None[types.Datetime](),
	}, nil
}

// MapRecords is the `mapper` role of the contract (interface crmsync:plugin/mapper).
func MapRecords(ctx types.Context, records []types.SyncRecord) []result {
	results := make([]result, 0, len(records))
	for _, record := range records {
		mapped, err := mapLead(ctx, record)
		if err == nil {
			results = append(results, witTypes.Ok[types.SyncRecord, types.RecordError](mapped))
			continue
		}
		e := err.(*invalid)
		field := witTypes.None[string]()
		if e.field != "" {
			field = witTypes.Some(e.field)
		}
		results = append(results, witTypes.Err[types.SyncRecord](types.RecordError{Code: e.code, Message: e.message, Field: field}))
	}
	return results
}
