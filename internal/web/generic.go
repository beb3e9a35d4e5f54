package web

import (
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"slices"
	"sort"
	"strings"
)

// The status document grows: other parts add sections (the eviction
// guard, active-active announcements, resources, ...) and fields. The page
// lays out the main tables by hand and renders everything else from the
// document's JSON, so a new section or field shows up without page code:
// a top-level key the page does not know becomes a section of its own, a
// field it does not know goes to the row's "more" cell.

// kv is one field the page has no column for.
type kv struct{ Key, Value string }

// asJSONMap is v as the JSON document shows it. The page converts the
// report once and hands each table its part (jsonItem), rather than
// marshalling every service and real server again on its own.
func asJSONMap(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// jsonItem is element i of the list under key in m, the JSON of one row
// of the document (nil when there is none).
func jsonItem(m map[string]any, key string, i int) map[string]any {
	list, _ := m[key].([]any)
	if i >= len(list) {
		return nil
	}
	item, _ := list[i].(map[string]any)
	return item
}

// extraFields are the fields of m (one object of the status document, as
// JSON) that are not in known and not empty, by name.
func extraFields(m map[string]any, known ...string) []kv {
	var out []kv
	for k, val := range m {
		if slices.Contains(known, k) || empty(val) {
			continue
		}
		out = append(out, kv{Key: humanize(k), Value: compact(val)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == "" || x == "0001-01-01T00:00:00Z"
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// compact is a value on one line: scalars as text, lists joined, objects
// as key=value pairs.
func compact(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case float64:
		return fmt.Sprint(x)
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = compact(e)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		var parts []string
		for _, k := range orderedKeys(x) {
			if !empty(x[k]) {
				parts = append(parts, k+"="+compact(x[k]))
			}
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	return fmt.Sprint(v)
}

// section is one top-level part of the document the page has no layout
// for, rendered generically.
type section struct {
	ID, Title string
	Body      template.HTML
}

// extraSections renders the top-level keys of the document m (as JSON)
// not in known.
func extraSections(m map[string]any, known ...string) []section {
	var out []section
	for _, k := range orderedKeys(m) {
		if slices.Contains(known, k) || m[k] == nil {
			continue
		}
		out = append(out, section{ID: "section-" + k, Title: humanize(k), Body: template.HTML(renderValue(m[k]))})
	}
	return out
}

// renderValue writes v as escaped HTML: an object as a definition list, a
// list of objects as a table with a column per key, a list of scalars as
// text.
func renderValue(v any) string {
	var b strings.Builder
	writeValue(&b, v)
	return b.String()
}

func writeValue(b *strings.Builder, v any) {
	switch x := v.(type) {
	case map[string]any:
		b.WriteString(`<dl class="kv">`)
		for _, k := range orderedKeys(x) {
			fmt.Fprintf(b, "<dt>%s</dt><dd>", html.EscapeString(humanize(k)))
			writeValue(b, x[k])
			b.WriteString("</dd>")
		}
		b.WriteString("</dl>")
	case []any:
		if len(x) == 0 {
			b.WriteString("none")
			return
		}
		var cols []string
		for _, e := range x {
			row, ok := e.(map[string]any)
			if !ok {
				b.WriteString(html.EscapeString(compact(x)))
				return
			}
			for _, k := range orderedKeys(row) {
				if !slices.Contains(cols, k) {
					cols = append(cols, k)
				}
			}
		}
		b.WriteString(`<div class="scroll"><table class="generic"><thead><tr>`)
		for _, c := range cols {
			fmt.Fprintf(b, `<th scope="col">%s</th>`, html.EscapeString(humanize(c)))
		}
		b.WriteString("</tr></thead><tbody>")
		for _, e := range x {
			row := e.(map[string]any)
			b.WriteString("<tr>")
			for _, c := range cols {
				fmt.Fprintf(b, `<td data-label="%s">%s</td>`, html.EscapeString(humanize(c)), html.EscapeString(compact(row[c])))
			}
			b.WriteString("</tr>")
		}
		b.WriteString("</tbody></table></div>")
	default:
		b.WriteString(html.EscapeString(compact(v)))
	}
}

// orderedKeys puts the keys that name a thing first, the rest sorted.
func orderedKeys(m map[string]any) []string {
	first := []string{"name", "service", "realserver", "instance", "vip", "address", "state"}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := slices.Index(first, keys[i]), slices.Index(first, keys[j])
		switch {
		case a >= 0 && b >= 0:
			return a < b
		case a >= 0:
			return true
		case b >= 0:
			return false
		}
		return keys[i] < keys[j]
	})
	return keys
}

// humanize turns a JSON name into a heading: "eviction_guard" is
// "Eviction guard".
func humanize(k string) string {
	s := strings.ReplaceAll(k, "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
