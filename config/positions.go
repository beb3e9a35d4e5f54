package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml records one position per dotted key name, so the tenth
// [[service.realserver]] and the first share an entry and an error in one
// of them cannot be placed. lineIndex re-reads the (already parsed, so
// valid) source and records the line of every key, table header and array
// element under a path that includes array indices. It must never panic or
// loop on any input, because the fuzzer feeds it whatever parsed.

// sep joins path segments; it cannot appear in a bare key and practically
// never in a quoted one.
const sep = "\x1f"

// elemSeg is the path segment of the i-th (0-based) element of an array.
func elemSeg(i int) string { return "#" + strconv.Itoa(i) }

// lineIndex is a tree of path segments rather than a map of whole paths:
// a file of 500 services x 10 real servers has some 20,000 keys, and
// building a path string for each one cost more than reading the file.
// Segments are slices of the source, so recording a key allocates nothing.
type lineIndex struct {
	nodes    map[edge]node
	rootLine int32 // line of the path "" (a top-level key spelt "")
	headers  int   // table headers seen, to size the decoder's maps
}

// edge is one segment below the node numbered parent (0 is the root).
type edge struct {
	parent int32
	seg    string
}

// node is a path: its number and the line it was first seen on (0: only
// ever passed through, as "a" is by the header [a.b]).
type node struct {
	id, line int32
}

// lineOf returns the line of path, or of its nearest ancestor that has
// one: a missing key is reported at the header of the table that lacks it.
func (x lineIndex) lineOf(path string) int {
	if path == "" {
		return int(x.rootLine)
	}
	id, line := int32(0), int32(0)
	for {
		seg, rest, more := strings.Cut(path, sep)
		n, ok := x.nodes[edge{id, seg}]
		if !ok {
			return int(line)
		}
		id = n.id
		if n.line > 0 {
			line = n.line
		}
		if !more {
			return int(line)
		}
		path = rest
	}
}

type scanner struct {
	src    string
	i      int
	line   int
	x      lineIndex
	arrays map[int32]int // node of an array of tables -> elements so far
	elems  []string      // elemSeg(i), made once per i
	keyBuf []string
}

func indexLines(src string) lineIndex {
	s := &scanner{
		src:    src,
		line:   1,
		x:      lineIndex{nodes: make(map[edge]node, strings.Count(src, "\n")+1)},
		arrays: map[int32]int{},
	}
	s.document()
	return s.x
}

// child returns the node of segment seg below parent, making it if new.
// As join does for strings, the empty segment at the root is the root.
func (s *scanner) child(parent int32, seg string) int32 {
	if parent == 0 && seg == "" {
		return 0
	}
	e := edge{parent, seg}
	if n, ok := s.x.nodes[e]; ok {
		return n.id
	}
	id := int32(len(s.x.nodes) + 1)
	s.x.nodes[e] = node{id: id}
	return id
}

// elem returns the node of the n-th element of the array at parent.
func (s *scanner) elem(parent int32, n int) int32 {
	for len(s.elems) <= n {
		s.elems = append(s.elems, elemSeg(len(s.elems)))
	}
	return s.child(parent, s.elems[n])
}

// record sets the line of the node seg below parent, unless it has one,
// and returns the node.
func (s *scanner) record(parent int32, seg string, line int) int32 {
	if parent == 0 && seg == "" {
		if s.x.rootLine == 0 {
			s.x.rootLine = int32(line)
		}
		return 0
	}
	e := edge{parent, seg}
	n, ok := s.x.nodes[e]
	if !ok {
		n = node{id: int32(len(s.x.nodes) + 1)}
	} else if n.line > 0 {
		return n.id
	}
	n.line = int32(line)
	s.x.nodes[e] = n
	return n.id
}

func (s *scanner) recordElem(parent int32, n, line int) int32 {
	for len(s.elems) <= n {
		s.elems = append(s.elems, elemSeg(len(s.elems)))
	}
	return s.record(parent, s.elems[n], line)
}

func (s *scanner) peek(k int) byte {
	if s.i+k < len(s.src) {
		return s.src[s.i+k]
	}
	return 0
}

func (s *scanner) eof() bool { return s.i >= len(s.src) }

func (s *scanner) advance() {
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

// skipSpace skips blanks and, with newlines set, line breaks and comments.
func (s *scanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			s.i++
		case c == '#':
			for !s.eof() && s.src[s.i] != '\n' {
				s.i++
			}
		case c == '\n' && newlines:
			s.advance()
		default:
			return
		}
	}
}

func (s *scanner) skipLine() {
	for !s.eof() && s.src[s.i] != '\n' {
		s.advance()
	}
}

func (s *scanner) document() {
	table := int32(0)
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.src[s.i] == '[' {
			table = s.header()
		} else {
			s.keyValue(table)
		}
		if s.i == start { // unparseable byte: step over it rather than loop
			s.advance()
		}
		s.skipLine()
	}
}

// header reads [a.b] or [[a.b]] and returns the node of the table it
// opens. Each segment that names an array of tables refers to its latest
// element, as TOML defines.
func (s *scanner) header() int32 {
	s.x.headers++
	line := s.line
	s.i++
	array := s.peek(0) == '['
	if array {
		s.i++
	}
	keys := s.key()
	path := int32(0)
	for j, k := range keys {
		if j == len(keys)-1 {
			break
		}
		path = s.child(path, k)
		if n := s.arrays[path]; n > 0 {
			path = s.elem(path, n-1)
		}
	}
	last := ""
	if len(keys) > 0 {
		last = keys[len(keys)-1]
	}
	path = s.record(path, last, line)
	if !array {
		return path
	}
	n := s.arrays[path]
	s.arrays[path] = n + 1
	return s.recordElem(path, n, line)
}

func (s *scanner) keyValue(table int32) {
	line := s.line
	keys := s.key()
	if len(keys) == 0 {
		return
	}
	path := table
	for _, k := range keys {
		path = s.record(path, k, line)
	}
	s.skipSpace(false)
	if s.peek(0) != '=' {
		return
	}
	s.i++
	s.value(path)
}

// key reads a possibly dotted, possibly quoted key. The slice it returns
// is reused by the next call.
func (s *scanner) key() []string {
	keys := s.keyBuf[:0]
	defer func() { s.keyBuf = keys[:0] }()
	for {
		s.skipSpace(false)
		if s.eof() {
			return keys
		}
		switch c := s.src[s.i]; {
		case c == '"' || c == '\'':
			keys = append(keys, s.quotedKey(c))
		case isBareKeyChar(c):
			start := s.i
			for !s.eof() && isBareKeyChar(s.src[s.i]) {
				s.i++
			}
			keys = append(keys, s.src[start:s.i])
		default:
			return keys
		}
		s.skipSpace(false)
		if s.peek(0) != '.' {
			return keys
		}
		s.i++
	}
}

// quotedKey reads a quoted key; a backslash keeps the byte after it.
func (s *scanner) quotedKey(q byte) string {
	s.i++
	start := s.i
	for !s.eof() && s.src[s.i] != q && s.src[s.i] != '\n' {
		if q == '"' && s.src[s.i] == '\\' {
			s.i = start
			return s.escapedKey(q)
		}
		s.i++
	}
	k := s.src[start:s.i]
	if !s.eof() && s.src[s.i] == q {
		s.i++
	}
	return k
}

func (s *scanner) escapedKey(q byte) string {
	var b strings.Builder
	for !s.eof() && s.src[s.i] != q && s.src[s.i] != '\n' {
		if q == '"' && s.src[s.i] == '\\' && s.i+1 < len(s.src) {
			s.i++
		}
		b.WriteByte(s.src[s.i])
		s.i++
	}
	if !s.eof() && s.src[s.i] == q {
		s.i++
	}
	return b.String()
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value, recording the lines of array elements and of the
// keys of inline tables under path.
func (s *scanner) value(path int32) {
	s.skipSpace(false)
	if s.eof() {
		return
	}
	switch s.src[s.i] {
	case '"', '\'':
		s.str(s.src[s.i])
	case '[':
		s.i++
		for n := 0; ; n++ {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.src[s.i] == ']' {
				s.i++
				return
			}
			elem := s.recordElem(path, n, s.line)
			start := s.i
			s.value(elem)
			s.skipSpace(true)
			if s.peek(0) == ',' {
				s.i++
			} else if s.peek(0) != ']' && s.i == start {
				return // not valid TOML; give up on this value
			}
		}
	case '{':
		s.i++
		for {
			s.skipSpace(true)
			if s.eof() {
				return
			}
			if s.src[s.i] == '}' {
				s.i++
				return
			}
			start := s.i
			line := s.line
			keys := s.key()
			p := path
			for _, k := range keys {
				p = s.record(p, k, line)
			}
			s.skipSpace(false)
			if s.peek(0) == '=' {
				s.i++
				s.value(p)
			}
			s.skipSpace(true)
			if s.peek(0) == ',' {
				s.i++
			} else if s.i == start {
				return
			}
		}
	default:
		for !s.eof() {
			switch s.src[s.i] {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.i++
		}
	}
}

// str skips a basic, literal or multi-line string, counting its lines.
func (s *scanner) str(q byte) {
	if s.peek(1) == q && s.peek(2) == q {
		s.i += 3
		for !s.eof() {
			if q == '"' && s.src[s.i] == '\\' {
				s.i++
				if !s.eof() {
					s.advance()
				}
				continue
			}
			if s.src[s.i] == q && s.peek(1) == q && s.peek(2) == q {
				s.i += 3
				// A closing delimiter may be preceded by up to two quotes
				// that belong to the content: """a""""" ends after all five.
				for k := 0; k < 2 && s.peek(0) == q; k++ {
					s.i++
				}
				return
			}
			s.advance()
		}
		return
	}
	s.i++
	for !s.eof() && s.src[s.i] != '\n' {
		c := s.src[s.i]
		s.i++
		if q == '"' && c == '\\' && !s.eof() && s.src[s.i] != '\n' {
			s.i++
			continue
		}
		if c == q {
			return
		}
	}
}

func join(path, seg string) string {
	if path == "" {
		return seg
	}
	return path + sep + seg
}
