package checks

import (
	"errors"
	"syscall"
)

// What a failed probe says about the server, for the director's eviction
// guard (director/guard.go): a failure only lvsd's own lateness or lack of
// resources could explain may be held while lvsd is in trouble; an answer
// from the server never is.

// LocalClass is the class of a probe that never reached the server because
// lvsd had no file descriptor, memory or buffer for it.
const LocalClass = "local"

// answered are the classes in which the server, or its host's kernel,
// answered and the answer was wrong: a refusal, a reset, a TLS alert or bad
// certificate, a status, body or reply that did not match, a DNS rcode or
// answer, an LDAP result, a script's exit. A broken check config is here
// too: it is no sign of lvsd being in trouble.
var answered = map[string]bool{
	"refused": true, "reset": true, "tls": true, "expect": true, "status": true, "body": true,
	"rcode": true, "empty": true, "answer": true, "bind": true, "entries": true, "search": true,
	"exit": true, "signal": true, "config": true,
}

// silent are the classes in which nothing came back, or nothing that names
// the server: no reply in time, no route or neighbour, a connect or read
// error of no known kind, or no local resources for the probe. A director
// that is behind, or out of file descriptors or memory, produces these.
var silent = map[string]bool{
	"timeout": true, "unreachable": true, "connect": true, "io": true, LocalClass: true,
}

// ServerAnswered reports whether a failure of this class (see ReasonClass)
// is the server's own answer, which the eviction guard never holds. An
// unknown class ("other") is not.
func ServerAnswered(class string) bool { return answered[class] }

// localErr reports whether err means lvsd itself ran out of something: file
// descriptors (EMFILE, ENFILE), memory (ENOMEM), socket buffers (ENOBUFS),
// or processes or threads for an exec check (EAGAIN from fork).
func localErr(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.ENOBUFS, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
