package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// node is one keepalived statement: a keyword, its arguments and, for a
// block, the statements between its braces.
type node struct {
	pos   Pos
	words []string
	block bool
	kids  []*node
}

func (n *node) key() string { return n.words[0] }

// args are the words after the keyword.
func (n *node) args() []string { return n.words[1:] }

func (n *node) arg(i int) string {
	if i+1 < len(n.words) {
		return n.words[i+1]
	}
	return ""
}

// kparser reads keepalived.conf syntax: statements one per line, blocks in
// braces, comments from an unquoted '#' or '!' to the end of the line,
// double-quoted strings, a trailing '\' joining lines, "include GLOB"
// (relative to the including file), "@ID" lines kept only for that config
// id (keepalived -i), and $NAME=value parameters.
type kparser struct {
	configID string
	params   map[string]string
	rep      *report
	errs     Errors
	chain    []string // files being read, for include loops

	tokens []token
}

type token struct {
	pos  Pos
	word string
	eol  bool // last word of its line
	bare bool // not quoted: '{' and '}' count as braces
}

const maxIncludeDepth = 32

func parseKeepalived(path, configID string, rep *report) ([]*node, error) {
	p := &kparser{configID: configID, params: map[string]string{}, rep: rep}
	p.readFile(path, Pos{})
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	nodes := p.tree()
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return nodes, nil
}

func (p *kparser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *kparser) readFile(path string, from Pos) {
	if slices.Contains(p.chain, path) {
		p.errorf(from, "include: %s includes itself (through %s)", path, strings.Join(p.chain, " -> "))
		return
	}
	if len(p.chain) >= maxIncludeDepth {
		p.errorf(from, "include: nested more than %d deep", maxIncludeDepth)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if from.File == "" {
			p.errs = append(p.errs, &Error{Pos: Pos{File: path}, Msg: fmt.Sprintf("cannot read: %v", err)})
		} else {
			p.errorf(from, "include: cannot read %s: %v", path, err)
		}
		return
	}
	p.rep.file(path)
	p.chain = append(p.chain, path)
	defer func() { p.chain = p.chain[:len(p.chain)-1] }()

	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	lineNo, startLine := 0, 0
	var joined strings.Builder
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if joined.Len() == 0 {
			startLine = lineNo
		}
		// A '\' at the end of a line, outside a comment, continues it.
		if body, cont := continued(line); cont {
			joined.WriteString(body)
			joined.WriteByte(' ')
			continue
		}
		joined.WriteString(line)
		p.line(joined.String(), Pos{File: path, Line: startLine})
		joined.Reset()
	}
	if joined.Len() > 0 {
		p.line(joined.String(), Pos{File: path, Line: startLine})
	}
	if err := sc.Err(); err != nil {
		p.errorf(Pos{File: path, Line: lineNo}, "read: %v", err)
	}
}

// continued reports whether line (after its comment is cut) ends in '\'.
func continued(line string) (string, bool) {
	body := strings.TrimRight(decomment(line), " \t")
	if strings.HasSuffix(body, `\`) && !strings.HasSuffix(body, `\\`) {
		return strings.TrimSuffix(body, `\`), true
	}
	return line, false
}

// decomment cuts an unquoted '#' or '!' and what follows; "\#" and "\!"
// stand for the characters themselves.
func decomment(line string) string {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '"':
			quoted = !quoted
		case c == '\\' && i+1 < len(line):
			i++
		case !quoted && (c == '#' || c == '!'):
			return line[:i]
		}
	}
	return line
}

var paramDef = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$`)
var paramUse = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

func (p *kparser) line(line string, pos Pos) {
	line = strings.TrimSpace(decomment(line))
	if line == "" {
		return
	}
	if strings.HasPrefix(line, "@") {
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return // keepalived ignores an "@ID" with nothing after it
		}
		id, rest := line[1:i], line[i:]
		want := true
		if strings.HasPrefix(id, "^") {
			id, want = id[1:], false
		}
		if (id == p.configID) != want {
			return // keepalived skips it too when run with another -i
		}
		line = strings.TrimSpace(rest)
	}
	if m := paramDef.FindStringSubmatch(line); m != nil {
		p.params[m[1]] = strings.TrimSpace(m[2])
		p.rep.add(pos, "$"+m[1], Ignored, "a keepalived parameter; its uses are expanded in the output")
		return
	}
	if strings.Contains(line, "$") {
		line = paramUse.ReplaceAllStringFunc(line, func(s string) string {
			name := strings.Trim(s, "${}")
			if v, ok := p.params[name]; ok {
				return v
			}
			return s
		})
	}
	words, err := splitWords(line)
	if err != nil {
		p.errorf(pos, "%v", err)
		return
	}
	if len(words) == 0 {
		return
	}
	if words[0].s == "include" {
		if len(words) != 2 {
			p.errorf(pos, "include: want one file name or glob")
			return
		}
		p.include(words[1].s, pos)
		return
	}
	for i, w := range words {
		p.tokens = append(p.tokens, token{pos: pos, word: w.s, bare: !w.quoted, eol: i == len(words)-1})
	}
}

func (p *kparser) include(pattern string, pos Pos) {
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(pos.File), pattern)
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		p.errorf(pos, "include: bad pattern %q: %v", pattern, err)
		return
	}
	if len(matches) == 0 {
		if hasMeta(pattern) {
			p.errorf(pos, "include: no file matches %s", pattern)
		} else {
			p.errorf(pos, "include: %s does not exist", pattern)
		}
		return
	}
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			continue // keepalived skips directories a glob matches
		}
		p.readFile(m, pos)
	}
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[`) }

type word struct {
	s      string
	quoted bool
}

// splitWords splits on blanks; "..." is one word without its quotes, and
// unquoted '{' and '}' are words of their own.
func splitWords(line string) ([]word, error) {
	var out []word
	var cur strings.Builder
	in, quoted, has := false, false, false
	flush := func() {
		if has {
			out = append(out, word{s: cur.String(), quoted: quoted})
		}
		cur.Reset()
		has, quoted = false, false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case in && c == '"':
			in = false
		case in && c == '\\' && i+1 < len(line) && line[i+1] == '"':
			cur.WriteByte('"')
			i++
		case in:
			cur.WriteByte(c)
		case c == '"':
			in, quoted, has = true, true, true
		case c == ' ' || c == '\t':
			flush()
		case c == '{' || c == '}':
			flush()
			out = append(out, word{s: string(c)})
		case c == '\\' && i+1 < len(line) && (line[i+1] == '#' || line[i+1] == '!'):
			cur.WriteByte(line[i+1])
			has = true
			i++
		default:
			cur.WriteByte(c)
			has = true
		}
	}
	if in {
		return nil, fmt.Errorf("unterminated quote")
	}
	flush()
	return out, nil
}

// tree builds statements and blocks from the token stream.
func (p *kparser) tree() []*node {
	type frame struct {
		open *node // the block's statement; nil at the top
		kids *[]*node
	}
	var top []*node
	stack := []frame{{kids: &top}}
	var cur *node
	finish := func() {
		if cur != nil {
			f := &stack[len(stack)-1]
			*f.kids = append(*f.kids, cur)
			cur = nil
		}
	}
	for _, t := range p.tokens {
		switch {
		case t.bare && t.word == "{":
			f := &stack[len(stack)-1]
			var owner *node
			if cur != nil {
				owner = cur
				finish()
			} else if n := len(*f.kids); n > 0 && !(*f.kids)[n-1].block {
				owner = (*f.kids)[n-1] // "{" on a line of its own
			} else {
				p.errorf(t.pos, "'{' without a keyword before it")
				return nil
			}
			owner.block = true
			stack = append(stack, frame{open: owner, kids: &owner.kids})
		case t.bare && t.word == "}":
			finish()
			if len(stack) == 1 {
				p.errorf(t.pos, "'}' closes no block")
				return nil
			}
			stack = stack[:len(stack)-1]
		default:
			if cur == nil {
				cur = &node{pos: t.pos}
			}
			cur.words = append(cur.words, t.word)
		}
		if t.eol {
			finish()
		}
	}
	finish()
	if len(stack) > 1 {
		open := stack[len(stack)-1].open
		p.errorf(open.pos, "%s: '{' is never closed", open.key())
		return nil
	}
	return top
}
