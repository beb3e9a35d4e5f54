package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a config file. Its text is
// "FILE:LINE: key.path: message"; File, Line and Path are left out when
// unknown, so an error from a Validate method alone reads "key: message".
// A warning (Config.Warnings) reads "FILE:LINE: warning: key.path: message".
type Error struct {
	File string
	Line int    // 1-based; 0 when unknown
	Path string // e.g. service[bdii].realserver[2].weight
	Msg  string
	Warn bool // valid but suspicious: reported, never rejected
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Warn {
		b.WriteString("warning: ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config, in file order. Load returns
// all of them at once so an operator fixes a file in one pass.
type Errors []error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the *Error values inside.
func (es Errors) Unwrap() []error { return es }

// problems collects errors with paths relative to one table; the loader
// later prefixes the table's path and finds the line.
type problems struct{ errs Errors }

func (p *problems) add(path, format string, args ...any) {
	p.errs = append(p.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return p.errs
}

// sortByLine orders errors as they appear in the file; errors with no
// line go last. The sort is stable so errors on one line keep the order
// in which they were found.
func sortByLine(es Errors) {
	line := func(e error) int {
		if fe, ok := e.(*Error); ok && fe.Line > 0 {
			return fe.Line
		}
		return int(^uint(0) >> 1)
	}
	sort.SliceStable(es, func(i, j int) bool { return line(es[i]) < line(es[j]) })
}
