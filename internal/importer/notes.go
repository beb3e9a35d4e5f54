// Package importer turns a keepalived.conf or an ldirectord.cf into an lvsd
// TOML config. Whatever cannot be carried over is reported as a Note with
// the source file and line, so nothing is dropped silently.
package importer

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Exit codes of `lvsd import`, documented in the README.
const (
	ExitComplete   = 0 // every construct was carried over
	ExitError      = 1 // the input could not be read or parsed; nothing printed
	ExitUsage      = 2
	ExitIncomplete = 3 // printed, but some constructs were not carried over
)

// Pos is a place in a source file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Kind says how a construct fared.
type Kind int

const (
	// Dropped: not carried over; the result is incomplete.
	Dropped Kind = iota
	// Changed: carried over, but lvsd behaves differently in a detail.
	Changed
	// Ignored: has no meaning for lvsd (process tuning, labels, ...).
	Ignored
)

func (k Kind) String() string {
	switch k {
	case Dropped:
		return "not carried over"
	case Changed:
		return "changed"
	}
	return "ignored"
}

// Note is one line of the import report on stderr.
type Note struct {
	Pos     Pos
	Keyword string
	Kind    Kind
	Why     string
}

func (n Note) String() string {
	return fmt.Sprintf("%s: %s: %s: %s", n.Pos, n.Keyword, n.Kind, n.Why)
}

// Error is an input the importer cannot make sense of: nothing is printed.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return e.Pos.File + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Errors is every Error found in one input.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Result is an imported config and the report on it.
type Result struct {
	TOML  []byte
	Notes []Note
}

// Complete reports whether every construct was carried over.
func (r *Result) Complete() bool {
	for _, n := range r.Notes {
		if n.Kind == Dropped {
			return false
		}
	}
	return true
}

// ExitCode is ExitComplete or ExitIncomplete.
func (r *Result) ExitCode() int {
	if r.Complete() {
		return ExitComplete
	}
	return ExitIncomplete
}

// report collects notes; the same note from one source line is kept once
// (a virtual_server_group expands one checker into many services).
type report struct {
	files []string // in the order first read, to sort notes by
	notes []Note
	seen  map[Note]bool
}

func (r *report) add(pos Pos, keyword string, kind Kind, format string, args ...any) {
	n := Note{Pos: pos, Keyword: keyword, Kind: kind, Why: fmt.Sprintf(format, args...)}
	if r.seen == nil {
		r.seen = map[Note]bool{}
	}
	if r.seen[n] {
		return
	}
	r.seen[n] = true
	r.notes = append(r.notes, n)
}

func (r *report) file(name string) {
	if !slices.Contains(r.files, name) {
		r.files = append(r.files, name)
	}
}

// sorted returns the notes in file order, then line order.
func (r *report) sorted() []Note {
	idx := func(f string) int { return slices.Index(r.files, f) }
	out := slices.Clone(r.notes)
	slices.SortStableFunc(out, func(a, b Note) int {
		if c := cmp.Compare(idx(a.Pos.File), idx(b.Pos.File)); c != 0 {
			return c
		}
		return cmp.Compare(a.Pos.Line, b.Pos.Line)
	})
	return out
}
