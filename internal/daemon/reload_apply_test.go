package daemon

import (
	"errors"
	"slices"
	"testing"
)

// recordingPart is a preparer that records its prepare, commit and undo in
// a shared log, and refuses when told to.
type recordingPart struct {
	name   string
	log    *[]string
	refuse error
}

func (p recordingPart) Prepare(c *change) (func(), error) {
	*p.log = append(*p.log, "prepare "+p.name)
	if p.refuse != nil {
		return nil, p.refuse
	}
	c.onAbort(func() { *p.log = append(*p.log, "undo "+p.name) })
	return func() { *p.log = append(*p.log, "commit "+p.name) }, nil
}

// TestApplyPreparesAllThenCommitsInOrder: no commit runs before every part
// has prepared, and they run in the parts' order.
func TestApplyPreparesAllThenCommitsInOrder(t *testing.T) {
	var log []string
	parts := []preparer{recordingPart{"a", &log, nil}, prepareFunc(func(*change) (func(), error) { return nil, nil }), recordingPart{"b", &log, nil}}
	if err := apply(&change{}, parts); err != nil {
		t.Fatal(err)
	}
	if want := []string{"prepare a", "prepare b", "commit a", "commit b"}; !slices.Equal(log, want) {
		t.Errorf("apply ran %q, want %q", log, want)
	}
}

// TestApplyRefusedCommitsNothing: a part that refuses stops the reload
// before any commit, later parts are not asked, and what earlier prepares
// acquired is released, newest first.
func TestApplyRefusedCommitsNothing(t *testing.T) {
	var log []string
	refusal := errors.New("no")
	parts := []preparer{recordingPart{"a", &log, nil}, recordingPart{"b", &log, nil}, recordingPart{"c", &log, refusal}, recordingPart{"d", &log, nil}}
	if err := apply(&change{}, parts); !errors.Is(err, refusal) {
		t.Fatalf("apply = %v, want the refusal", err)
	}
	if want := []string{"prepare a", "prepare b", "prepare c", "undo b", "undo a"}; !slices.Equal(log, want) {
		t.Errorf("apply ran %q, want %q", log, want)
	}
}
