package daemon

import (
	"testing"

	"github.com/lvsd/lvsd/director"
)

func TestCauseOfAReason(t *testing.T) {
	for reason, want := range map[string]director.Cause{
		"timeout: connect 10.0.0.1:80: i/o timeout":               director.CauseSilent,
		"unreachable: connect 10.0.0.1:80: no route to host":      director.CauseSilent,
		"local: connect 10.0.0.1:80: socket: too many open files": director.CauseLocal,
		"refused: connect 10.0.0.1:80: connection refused":        director.CauseAnswered,
		"status: GET http://10.0.0.1/: got 503, want 200-399":     director.CauseAnswered,
		"entries: o=grid: 0 entries, the base does not exist":     director.CauseAnswered,
		"something nobody classified":                             director.CauseSilent,
	} {
		if got := causeOf(reason); got != want {
			t.Errorf("causeOf(%q) = %v, want %v", reason, got, want)
		}
	}
}
