package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/lvsd/lvsd/config"
)

// An action is refused, in this order, when actions are off (403), when
// the request comes from another site (403: the browser's Sec-Fetch-Site
// or Origin says so, http.CrossOriginProtection), when it lacks the
// page's CSRF token (403), or when it lacks the credential (401). Only
// then does the verb run, through the same Controller methods the control
// socket calls.

// verbs are the page's actions and what each needs.
var verbs = map[string]struct {
	target string // "realserver" or "instance"
	run    func(c Controller, a actionArgs) error
}{
	"drain":    {"realserver", func(c Controller, a actionArgs) error { return c.Drain(a.service, a.realserver, true) }},
	"undrain":  {"realserver", func(c Controller, a actionArgs) error { return c.Drain(a.service, a.realserver, false) }},
	"takeover": {"instance", func(c Controller, a actionArgs) error { return c.Takeover(a.instance) }},
	"giveup":   {"instance", func(c Controller, a actionArgs) error { return c.Giveup(a.instance) }},
}

type actionArgs struct{ service, realserver, instance string }

func (a actionArgs) String() string {
	if a.instance != "" {
		return a.instance
	}
	return a.service + " " + a.realserver
}

// csrf makes the token the page's forms carry: an HMAC under a key drawn
// at start, so it changes with every lvsd run and cannot be guessed by a
// page on another site, which cannot read ours.
type csrf struct {
	token string
	cop   *http.CrossOriginProtection
}

func newCSRF() *csrf {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("lvsd status page actions"))
	return &csrf{token: base64.RawURLEncoding.EncodeToString(m.Sum(nil)), cop: http.NewCrossOriginProtection()}
}

// check refuses a request another site made the browser send, and one
// without the page's token. A request that carries the action token in
// its Authorization header needs no page token: a browser never adds that
// header by itself, and another site cannot make it add one (that takes a
// CORS preflight lvsd never answers), so such a request is a script's.
func (c *csrf) check(r *http.Request, web config.Web) error {
	if err := c.cop.Check(r); err != nil {
		return fmt.Errorf("cross-site request: %w", err)
	}
	if web.Auth() == "token" && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return nil
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(c.token)) != 1 {
		return errors.New("missing or wrong CSRF token (reload the page)")
	}
	return nil
}

// errNoCredential is a request without the credential, or with a wrong one.
var errNoCredential = errors.New("missing or wrong credential")

// authenticate checks the request's credential against w and returns who
// made it, for the log: the basic-auth user, or "token".
func authenticate(r *http.Request, w config.Web) (string, error) {
	switch w.Auth() {
	case "token":
		tok := ""
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			tok = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
		} else {
			tok = strings.TrimSpace(r.PostFormValue("token"))
		}
		sum := sha256.Sum256([]byte(tok))
		if tok == "" || subtle.ConstantTimeCompare(sum[:], w.TokenSHA256[:]) != 1 {
			return "", errNoCredential
		}
		return "token", nil
	case "basic":
		user, pass, ok := r.BasicAuth()
		if !ok {
			return "", errNoCredential
		}
		userOK := subtle.ConstantTimeCompare([]byte(user), []byte(w.User)) == 1
		// bcrypt runs whatever the user, so a wrong user takes as long.
		passErr := bcrypt.CompareHashAndPassword([]byte(w.PasswordHash), []byte(pass))
		if !userOK || passErr != nil {
			return "", errNoCredential
		}
		return user, nil
	}
	return "", errors.New("actions are off")
}

func (h *handler) refuseWrite(w http.ResponseWriter, r *http.Request) {
	h.refuse(w, r, http.StatusForbidden, "the status page is read-only here: [director.web] actions are off", actionArgs{}, "")
}

func (h *handler) serveAction(w http.ResponseWriter, r *http.Request) {
	settings := h.settings()
	verb := r.PathValue("verb")
	args := actionArgs{service: r.PostFormValue("service"), realserver: r.PostFormValue("realserver"), instance: r.PostFormValue("instance")}
	if !settings.Actions {
		h.refuse(w, r, http.StatusForbidden, "the status page is read-only here: [director.web] actions are off", args, verb)
		return
	}
	if err := h.csrf.check(r, settings); err != nil {
		h.refuse(w, r, http.StatusForbidden, err.Error(), args, verb)
		return
	}
	v, ok := verbs[verb]
	if !ok {
		h.refuse(w, r, http.StatusNotFound, fmt.Sprintf("no action %q", verb), args, verb)
		return
	}
	who, err := authenticate(r, settings)
	if err != nil {
		switch settings.Auth() {
		case "basic":
			w.Header().Set("WWW-Authenticate", `Basic realm="lvsd actions", charset="UTF-8"`)
		case "token":
			w.Header().Set("WWW-Authenticate", `Bearer realm="lvsd actions"`)
		}
		h.refuse(w, r, http.StatusUnauthorized, err.Error(), args, verb)
		return
	}
	if (v.target == "realserver" && (args.service == "" || args.realserver == "")) || (v.target == "instance" && args.instance == "") {
		h.refuse(w, r, http.StatusBadRequest, verb+" needs a "+v.target, args, verb)
		return
	}
	if err := v.run(h.c, args); err != nil {
		h.log.Warn("status page action failed", "verb", verb, "target", args.String(), "user", who, "remote", r.RemoteAddr, "err", err)
		h.answer(w, r, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	h.log.Info("status page action", "verb", verb, "target", args.String(), "user", who, "remote", r.RemoteAddr)
	if wantsJSON(r) {
		h.answer(w, r, http.StatusOK, map[string]string{"result": "ok"})
		return
	}
	// A form post without the script: back to the page (POST, redirect,
	// GET), which shows the result.
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// refuse logs and answers a refused write. The credential is never in
// either: only what was asked, from where.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, code int, why string, args actionArgs, verb string) {
	h.log.Warn("status page action refused", "verb", verb, "target", args.String(), "remote", r.RemoteAddr, "why", why)
	if wantsJSON(r) {
		h.answer(w, r, code, map[string]string{"error": why})
		return
	}
	h.page.refused(w, code, refusal{Why: why, Verb: verb, Target: args.String(), CSRF: h.csrf.token,
		Service: args.service, RealServer: args.realserver, Instance: args.instance,
		AskToken: code == http.StatusUnauthorized && h.settings().Auth() == "token"})
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func (h *handler) answer(w http.ResponseWriter, r *http.Request, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
