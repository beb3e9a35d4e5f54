package config

import "strings"

// The line index as it was before it became a tree of segments: kept as
// the reference the tree is fuzzed against (FuzzLineIndexMatchesReference).

type refLineIndex struct {
	lines map[string]int // raw path -> 1-based line
}

// lineOf returns the line of path, or of its nearest ancestor that has
// one: a missing key is reported at the header of the table that lacks it.
func (x refLineIndex) lineOf(path string) int {
	for {
		if l, ok := x.lines[path]; ok {
			return l
		}
		i := strings.LastIndex(path, sep)
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

type refScanner struct {
	src    string
	i      int
	line   int
	lines  map[string]int
	arrays map[string]int // raw path of an array of tables -> elements so far
}

func refIndexLines(src string) refLineIndex {
	s := &refScanner{src: src, line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	s.document()
	return refLineIndex{lines: s.lines}
}

func (s *refScanner) peek(k int) byte {
	if s.i+k < len(s.src) {
		return s.src[s.i+k]
	}
	return 0
}

func (s *refScanner) eof() bool { return s.i >= len(s.src) }

func (s *refScanner) advance() {
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

func (s *refScanner) record(path string, line int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

// skipSpace skips blanks and, with newlines set, line breaks and comments.
func (s *refScanner) skipSpace(newlines bool) {
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

func (s *refScanner) skipLine() {
	for !s.eof() && s.src[s.i] != '\n' {
		s.advance()
	}
}

func (s *refScanner) document() {
	table := ""
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

// header reads [a.b] or [[a.b]] and returns the raw path of the table it
// opens. Each segment that names an array of tables refers to its latest
// element, as TOML defines.
func (s *refScanner) header() string {
	line := s.line
	s.i++
	array := s.peek(0) == '['
	if array {
		s.i++
	}
	keys := s.key()
	path := ""
	for j, k := range keys {
		path = join(path, k)
		if j == len(keys)-1 {
			break
		}
		if n := s.arrays[path]; n > 0 {
			path = join(path, elemSeg(n-1))
		}
	}
	if !array {
		s.record(path, line)
		return path
	}
	n := s.arrays[path]
	s.arrays[path] = n + 1
	s.record(path, line)
	path = join(path, elemSeg(n))
	s.record(path, line)
	return path
}

func (s *refScanner) keyValue(table string) {
	line := s.line
	keys := s.key()
	if len(keys) == 0 {
		return
	}
	path := table
	for _, k := range keys {
		path = join(path, k)
		s.record(path, line)
	}
	s.skipSpace(false)
	if s.peek(0) != '=' {
		return
	}
	s.i++
	s.value(path)
}

// key reads a possibly dotted, possibly quoted key.
func (s *refScanner) key() []string {
	var keys []string
	for {
		s.skipSpace(false)
		if s.eof() {
			return keys
		}
		switch c := s.src[s.i]; {
		case c == '"' || c == '\'':
			keys = append(keys, s.quotedKey(c))
		case refIsBareKeyChar(c):
			start := s.i
			for !s.eof() && refIsBareKeyChar(s.src[s.i]) {
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

func (s *refScanner) quotedKey(q byte) string {
	s.i++
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

func refIsBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value, recording the lines of array elements and of the
// keys of inline tables under path.
func (s *refScanner) value(path string) {
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
			elem := join(path, elemSeg(n))
			s.record(elem, s.line)
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
				p = join(p, k)
				s.record(p, line)
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
func (s *refScanner) str(q byte) {
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
