package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Decoding works on the generic tree BurntSushi/toml parses into rather
// than on its struct decoder, because that decoder stops at the first
// type error and cannot tell which array element a key belongs to. Walking
// the tree ourselves reports every wrong type, unknown key and foreign
// check key in one pass, each under its full path.

// loc is where a value sits: disp() is the path shown to people
// (service[bdii].realserver[2].weight), raw() the lineIndex key.
//
// A loc made by key keeps its last key apart until one of the two is
// asked for: nearly every loc is made for a value that decodes or
// validates fine and is never shown, and building both strings for each
// key of a large file cost more than reading it.
type loc struct {
	headDisp, headRaw string // the whole path, or all but leaf
	leaf              string
	hasLeaf           bool
}

func (l loc) key(k string) loc {
	l = l.settled()
	return loc{headDisp: l.headDisp, headRaw: l.headRaw, leaf: k, hasLeaf: true}
}

// elem is the i-th (0-based) element of an array, shown by label: a name
// where the element has one, else its 1-based position.
func (l loc) elem(i int, label string) loc {
	l = l.settled()
	raw := "#" + strconv.Itoa(i) // elemSeg(i), joined below in one allocation
	if l.headRaw != "" {
		raw = l.headRaw + sep + raw
	}
	return loc{headDisp: l.headDisp + "[" + label + "]", headRaw: raw}
}

// settled returns l with its strings built.
func (l loc) settled() loc {
	if !l.hasLeaf {
		return l
	}
	d := l.leaf
	if l.headDisp != "" {
		d = l.headDisp + "." + l.leaf
	}
	return loc{headDisp: d, headRaw: join(l.headRaw, l.leaf)}
}

func (l loc) disp() string { return l.settled().headDisp }
func (l loc) raw() string  { return l.settled().headRaw }

// keySet is the set of keys a table gave in the file. Defaults apply only
// to keys not given, so an explicit 0 is validated instead of replaced.
// A nil keySet treats zero values as not given, for configs built in Go.
type keySet map[string]bool

func (k keySet) unset(key string, isZero bool) bool {
	if k == nil {
		return isZero
	}
	return !k[key]
}

type loader struct {
	file   string
	index  lineIndex
	errs   Errors
	warns  []*Error
	failed map[string]bool   // raw paths that already have an error
	given  map[string]keySet // raw table path -> keys it gave
	locs   map[any]loc       // *Service, *RealServer, *Check, *VRRP -> where it was decoded
}

func newLoader(file, src string) *loader {
	index := indexLines(src)
	return &loader{
		file:   file,
		index:  index,
		failed: map[string]bool{},
		given:  make(map[string]keySet, index.headers+1),
		locs:   make(map[any]loc, index.headers),
	}
}

// errorf records one error per key path: once a key is wrong, checks that
// build on its value would only repeat the complaint.
func (l *loader) errorf(at loc, format string, args ...any) {
	at = at.settled()
	if l.failed[at.headRaw] {
		return
	}
	l.failed[at.headRaw] = true
	l.errs = append(l.errs, &Error{File: l.file, Line: l.index.lineOf(at.headRaw), Path: at.headDisp, Msg: fmt.Sprintf(format, args...)})
}

// hasFailed reports whether at already has an error.
func (l *loader) hasFailed(at loc) bool { return l.failed[at.raw()] }

// adopt records the errors of a Validate method, whose paths are relative
// to the table at.
func (l *loader) adopt(at loc, err error) {
	if err == nil {
		return
	}
	es, ok := err.(Errors)
	if !ok {
		es = Errors{err}
	}
	for _, e := range es {
		if fe, ok := e.(*Error); ok && fe.File == "" {
			where := at
			if fe.Path != "" {
				where = at.key(fe.Path)
			}
			l.errorf(where, "%s", fe.Msg)
			continue
		}
		l.errorf(at, "%s", e.Error())
	}
}

func (l *loader) has(at loc, key string) bool { return l.given[at.raw()][key] }

// keysOf returns the keys a table gave, or nil for a path that is no table.
func (l *loader) keysOf(at loc) keySet { return l.given[at.raw()] }

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	checkType           = reflect.TypeFor[Check]()
)

// typeInfo is what the decoder asks of a Go type, worked out once per type
// rather than once per table: a file can hold thousands of tables.
type typeInfo struct {
	text   bool           // decoded from a string by UnmarshalText
	table  bool           // a struct decoded from a TOML table
	fields map[string]int // TOML key -> field index, for a struct
	line   int            // index of the int field Line, or -1
}

var typeInfos sync.Map // reflect.Type -> *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{text: reflect.PointerTo(t).Implements(textUnmarshalerType), line: -1}
	if t.Kind() == reflect.Struct {
		ti.table = !ti.text
		ti.fields = map[string]int{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name != "" && name != "-" {
				ti.fields[name] = i
			}
			if f.Name == "Line" && f.Type.Kind() == reflect.Int {
				ti.line = i
			}
		}
	}
	v, _ := typeInfos.LoadOrStore(t, ti)
	return v.(*typeInfo)
}

// decodeTable decodes a TOML table into the struct rv.
func (l *loader) decodeTable(m map[string]any, rv reflect.Value, at loc) {
	at = at.settled()
	given := make(keySet, len(m))
	for k := range m {
		given[k] = true
	}
	l.given[at.headRaw] = given
	ti := infoOf(rv.Type())
	if ti.line >= 0 {
		rv.Field(ti.line).SetInt(int64(l.index.lineOf(at.headRaw)))
	}
	if rv.Type() == checkType {
		l.decodeCheck(m, rv.Addr().Interface().(*Check), at)
		return
	}
	fields := ti.fields
	for _, k := range sortedKeys(m) {
		f, ok := fields[k]
		if !ok {
			l.unknownKey(at.key(k), k, fields)
			continue
		}
		l.decodeValue(m[k], rv.Field(f), at.key(k))
	}
}

// decodeCheck decodes common keys into c and the keys of c's type into
// that type's struct, so a key of another type is caught by name.
func (l *loader) decodeCheck(m map[string]any, c *Check, at loc) {
	typ, _ := m["type"].(string)
	spec := c.newSpecific(typ)
	common := tomlFields(checkType)
	var specFields map[string]int
	if spec.IsValid() {
		specFields = tomlFields(spec.Type())
	}
	for _, k := range sortedKeys(m) {
		if f, ok := common[k]; ok {
			l.decodeValue(m[k], reflect.ValueOf(c).Elem().Field(f), at.key(k))
			continue
		}
		if f, ok := specFields[k]; ok {
			l.decodeValue(m[k], spec.Field(f), at.key(k))
			continue
		}
		if owners := checkKeyOwners(k); owners != "" {
			if spec.IsValid() { // with no valid type, the type error says it all
				l.errorf(at.key(k), "not a key of %s checks (it belongs to %s checks)", typ, owners)
			}
			continue
		}
		all := map[string]int{}
		for n := range common {
			all[n] = 0
		}
		for n := range specFields {
			all[n] = 0
		}
		l.unknownKey(at.key(k), k, all)
	}
}

func (l *loader) unknownKey(at loc, key string, known map[string]int) {
	if s := suggest(key, known); s != "" {
		l.errorf(at, "unknown key (did you mean %q?)", s)
		return
	}
	l.errorf(at, "unknown key")
}

// stringDecoder is UnmarshalText from a string, for the value types:
// it spares the two copies of the text that []byte costs.
type stringDecoder interface{ decodeString(s string) error }

// decodeValue stores v in rv and reports whether v had a usable shape.
func (l *loader) decodeValue(v any, rv reflect.Value, at loc) bool {
	t := rv.Type()
	if infoOf(t).text {
		s, ok := v.(string)
		if !ok {
			l.errorf(at, "must be %s, not %s", textKind(t), tomlKind(v))
			return false
		}
		p := rv.Addr().Interface()
		var err error
		if sd, ok := p.(stringDecoder); ok {
			err = sd.decodeString(s)
		} else {
			err = p.(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
		}
		if err != nil {
			l.errorf(at, "%s", err)
			return false
		}
		return true
	}
	switch t.Kind() {
	case reflect.Pointer:
		nv := reflect.New(t.Elem())
		if !l.decodeValue(v, nv.Elem(), at) {
			return false
		}
		rv.Set(nv)
		return true
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			l.errorf(at, "must be a string, not %s", tomlKind(v))
			return false
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			l.errorf(at, "must be true or false, not %s", tomlKind(v))
			return false
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			l.errorf(at, "must be an integer, not %s", tomlKind(v))
			return false
		}
		rv.SetInt(n)
	case reflect.Uint32:
		n, ok := v.(int64)
		if !ok {
			l.errorf(at, "must be an integer, not %s", tomlKind(v))
			return false
		}
		if n < 0 || n > math.MaxUint32 {
			l.errorf(at, "%d out of range 0..%d", n, uint32(math.MaxUint32))
			return false
		}
		rv.SetUint(uint64(n))
	case reflect.Slice:
		return l.decodeArray(v, rv, at)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			l.errorf(at, "must be a table, not %s", tomlKind(v))
			return false
		}
		l.decodeTable(m, rv, at)
	default:
		// Only reachable if types.go gains a field kind this decoder does
		// not know; say so instead of silently dropping the value.
		l.errorf(at, "lvsd cannot decode a %s field", t)
		return false
	}
	return true
}

func (l *loader) decodeArray(v any, rv reflect.Value, at loc) bool {
	at = at.settled()
	elemType := rv.Type().Elem()
	var elems []any
	switch a := v.(type) {
	case []any:
		elems = a
	case []map[string]any:
		elems = make([]any, len(a))
		for i, e := range a {
			elems[i] = e
		}
	default:
		if isTable(elemType) {
			l.errorf(at, "must be an array of tables, not %s", tomlKind(v))
		} else {
			l.errorf(at, "must be an array, not %s", tomlKind(v))
		}
		return false
	}
	_, named := tomlFields(derefType(elemType))["name"]
	out := reflect.MakeSlice(rv.Type(), len(elems), len(elems))
	kept := 0
	where := make([]loc, 0, len(elems))
	for i, e := range elems {
		label := ""
		if m, ok := e.(map[string]any); ok && named {
			if n, ok := m["name"].(string); ok && n != "" {
				label = n
			}
		}
		if label == "" {
			label = strconv.Itoa(i + 1)
		}
		el := at.elem(i, label)
		ev := out.Index(kept)
		ok := l.decodeValue(e, ev, el)
		if !ok {
			// The array as a whole is now known to be wrong: checks on
			// it ("at least one VIP") would only repeat the error.
			l.failed[at.headRaw] = true
		}
		// A table of the wrong shape is left out, so nothing later trips
		// over a nil or half-made entry (tables keep their place in
		// l.locs). A scalar keeps its place as a zero value, so positions
		// in later messages still match the file.
		if ok || !isTable(elemType) {
			kept++
			where = append(where, el)
		} else {
			ev.SetZero()
		}
	}
	out = out.Slice(0, kept)
	rv.Set(out)
	if isTable(elemType) {
		for j := 0; j < out.Len(); j++ {
			ev := out.Index(j)
			if ev.Kind() != reflect.Pointer {
				ev = ev.Addr()
			}
			l.locs[ev.Interface()] = where[j]
		}
	}
	return true
}

func derefType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

func isTable(t reflect.Type) bool { return infoOf(derefType(t)).table }

// tomlFields maps the TOML key of each decodable field to its index. The
// map is shared: callers must not change it.
func tomlFields(t reflect.Type) map[string]int {
	if t.Kind() != reflect.Struct {
		return nil
	}
	return infoOf(t).fields
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tomlKind names the TOML type of a decoded value, for messages.
func tomlKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	case time.Time:
		return "a date-time"
	default:
		return "a date or time"
	}
}

// textKind describes what a text-decoded type expects.
func textKind(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return `a duration string such as "5s"`
	case reflect.TypeFor[Addr]():
		return `an address string such as "192.0.2.10"`
	case reflect.TypeFor[Prefix]():
		return `an address string such as "192.0.2.10/24"`
	}
	return "a string"
}

// suggest returns the known key closest to a misspelt one, if close enough
// to be a likely typo.
func suggest(key string, known map[string]int) string {
	best, bestDist := "", 3
	for k := range known {
		if d := editDistance(key, k); d < bestDist || d == bestDist && best != "" && k < best {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist >= 3 || bestDist*2 >= len(key) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
