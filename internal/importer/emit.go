package importer

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// table is one TOML table of the output, built in the order it is printed:
// the importers fill tables, and write renders them with comments, the way
// the README's examples look (sub-tables indented by two spaces).
type table struct {
	header   string   // "[[service]]", "[director]"; "" for the root
	comments []string // printed above the header
	kvs      []kv
	subs     []*table
}

type kv struct {
	key, val string // val is already TOML
	comment  string
}

func newTable(header string, comments ...string) *table {
	return &table{header: header, comments: comments}
}

// set adds key = v; v is a string, int, bool, []string, time.Duration or raw.
func (t *table) set(key string, v any, comment ...string) {
	t.kvs = append(t.kvs, kv{key: key, val: tomlValue(v), comment: strings.Join(comment, " ")})
}

func (t *table) has(key string) bool {
	for _, e := range t.kvs {
		if e.key == key {
			return true
		}
	}
	return false
}

func (t *table) get(key string) string {
	for _, e := range t.kvs {
		if e.key == key {
			return e.val
		}
	}
	return ""
}

func (t *table) remove(key string) {
	out := t.kvs[:0]
	for _, e := range t.kvs {
		if e.key != key {
			out = append(out, e)
		}
	}
	t.kvs = out
}

func (t *table) add(sub *table) { t.subs = append(t.subs, sub) }

func (t *table) note(comment string) { t.comments = append(t.comments, comment) }

// raw is a value already written in TOML.
type raw string

func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case int:
		return strconv.Itoa(v)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case bool:
		return strconv.FormatBool(v)
	case time.Duration:
		return quote(formatDuration(v))
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case raw:
		return string(v)
	}
	panic(fmt.Sprintf("importer: no TOML form for %T", v))
}

// quote writes a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// formatDuration writes whole seconds as "6s", minutes as "1m" and the rest
// the way Go prints them ("1.5s", "100ms").
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0 && d < time.Second:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.String()
}

// render writes the tables; each table's body is indented two spaces per
// level below the top, as in the README.
func render(root *table) []byte {
	var b strings.Builder
	writeTable(&b, root, -1)
	return []byte(strings.TrimLeft(b.String(), "\n"))
}

func writeTable(b *strings.Builder, t *table, depth int) {
	pad := ""
	if depth > 0 {
		pad = strings.Repeat("  ", depth)
	}
	if t.header != "" || len(t.comments) > 0 {
		b.WriteString("\n")
	}
	for _, c := range t.comments {
		writeComment(b, pad, c)
	}
	if t.header != "" {
		b.WriteString(pad + t.header + "\n")
	}
	for _, e := range t.kvs {
		line := pad + e.key + " = " + e.val
		if e.comment != "" {
			line += "  # " + e.comment
		}
		b.WriteString(line + "\n")
	}
	for _, s := range t.subs {
		writeTable(b, s, depth+1)
	}
}

func writeComment(b *strings.Builder, pad, c string) {
	for _, line := range strings.Split(c, "\n") {
		if line == "" {
			b.WriteString(pad + "#\n")
			continue
		}
		b.WriteString(pad + "# " + line + "\n")
	}
}

// tableText is t rendered alone without comments, to compare two tables.
func tableText(t *table) string {
	c := *t
	c.comments = nil
	c.kvs = nil
	for _, e := range t.kvs {
		c.kvs = append(c.kvs, kv{key: e.key, val: e.val})
	}
	var b strings.Builder
	writeTable(&b, &c, 0)
	return b.String()
}
