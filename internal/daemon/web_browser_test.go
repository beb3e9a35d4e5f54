package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The status page in a real browser: Debian's Chromium, headless, driven
// over the DevTools protocol, against the whole daemon in-process (the
// fake IPVS table stands in for the kernel's, as in every lab test).

var screenshotPath = flag.String("screenshot", "", "also write the status page's screenshot here (the README's docs/status-page.png)")

// browserConfig adds to the lab a second service whose one real server the
// test kills, and a VRRP instance, so the page has every kind of row.
const browserExtra = `
[[service]]
name = "api"
vip = "192.0.2.11"
port = 8080
scheduler = "rr"

  [[service.check]]
  type = "tcp"
  interval = "500ms"
  timeout = "400ms"
  rise = 1
  fall = 3

  [[service.realserver]]
  address = "%s"
` + labVRRP

// apiFall and apiInterval are the api check's: a killed server must read
// down on the page within apiFall × apiInterval + 2 s.
const (
	apiFall     = 3
	apiInterval = 500 * time.Millisecond
)

// killable is a TCP real server that can be killed: its listener closes
// and every connection attempt is refused from then on.
type killable struct{ l net.Listener }

func newKillable(t *testing.T) *killable {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return &killable{l: l}
}

func (k *killable) addr() string { return k.l.Addr().String() }
func (k *killable) kill()        { k.l.Close() }

// browser starts a headless Chromium as FIELD-NOTES.md says it runs here,
// with a fresh profile; the test skips when Debian's chromium is missing,
// unless LVSD_REQUIRE_BROWSER is set (make unit sets it).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("LVSD_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium: %v (make deps installs it)", err)
		}
		t.Skipf("chromium not installed (make deps installs it): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 3*time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelBrowser(); cancelAlloc(); cancelTimeout() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// run runs browser actions, failing the test on an error.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript condition in the page until it holds. A poll
// does not survive a navigation (a form the page submits), so one cut
// short by a navigation starts again on the new page.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(max(left, time.Millisecond)), chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		if left <= 0 || errors.Is(err, chromedp.ErrPollingTimeout) || ctx.Err() != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("%s: %v\npage:\n%s", what, err, page)
		}
	}
}

// scripts turns JavaScript in the page on or off.
func scripts(on bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on})
		return err
	})
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// rowSel is the CSS selector of a real server's row.
func rowSel(service, rs string) string {
	return fmt.Sprintf(`tr[data-key=%q]`, "rs/"+service+"/"+rs)
}

// forgeFrom serves, on another origin, a page whose form posts a drain of
// target to the lvsd at base as soon as it loads: a cross-site request
// forgery. It returns the page's URL.
func forgeFrom(t *testing.T, base, service, rs string) string {
	t.Helper()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!DOCTYPE html><html><body onload="document.forms[0].submit()">
<form method="post" action="%s/actions/drain"><input name="service" value="%s"><input name="realserver" value="%s"><input name="token" value="guess"></form></body></html>`, base, service, rs)
	}))
	t.Cleanup(evil.Close)
	return evil.URL
}

func TestStatusPageInBrowser(t *testing.T) {
	ctx := browser(t)
	api := newKillable(t)
	c := newLabConfig(t)
	c.Extra = fmt.Sprintf(browserExtra, api.addr())
	l := startLab(t, c)
	l.steady(c)
	l.waitVRRP("master", 2)
	base := "http://" + l.metrics
	// Traffic through the web service, as the kernel would count it.
	trafficDone := make(chan struct{})
	defer close(trafficDone)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-trafficDone:
				return
			case <-tick.C:
				l.addTraffic(c.Good, 3, 40, 24000)
			}
		}
	}()

	// Every service, real server and instance of the config is on the page.
	run(t, ctx, "open the page", chromedp.Navigate(base+"/"))
	waitJS(t, ctx, "the page goes live", `!document.getElementById("live").hidden`, 10*time.Second)
	cfg := l.d.config()
	for _, s := range cfg.Services {
		waitJS(t, ctx, "service "+s.Name, fmt.Sprintf(`!!document.getElementById(%s)`, jsString("svc-"+s.Name)), 5*time.Second)
		for _, r := range s.RealServers {
			waitJS(t, ctx, "real server "+r.Key(), fmt.Sprintf(`!!document.querySelector(%s)`, jsString(rowSel(s.Name, r.Key()))), 5*time.Second)
		}
	}
	for _, v := range cfg.VRRP {
		waitJS(t, ctx, "instance "+v.Name, fmt.Sprintf(`(document.querySelector('tr[data-key="vrrp/%s"] .word')||{}).textContent === "master"`, v.Name), 5*time.Second)
	}
	// Health is a word in the server's row.
	waitJS(t, ctx, "health words", fmt.Sprintf(`document.querySelector(%s + " .health .word").textContent === "up" && document.querySelector(%s + " .health .word").textContent === "down"`,
		jsString(rowSel("web", c.Good)), jsString(rowSel("web", c.Bad))), 5*time.Second)

	// Rates come from the kernel's counters.
	waitJS(t, ctx, "connection rate of web", `(t => t !== "0/s" && t !== "–")(document.querySelector('tr[data-key="svc/web"] td[data-label="Conns/s"]').textContent.trim())`, 10*time.Second)

	// Actions are off: no button, and a forged POST is refused.
	if buttons := eval[int](t, ctx, `document.querySelectorAll("button").length`); buttons != 0 {
		t.Errorf("%d buttons on a page with actions off", buttons)
	}
	run(t, ctx, "forged post, actions off", chromedp.Navigate(forgeFrom(t, base, "web", c.Good)))
	waitJS(t, ctx, "the forged drain is refused", `document.title === "lvsd: action refused" && document.body.innerText.includes("read-only")`, 10*time.Second)
	if d, _ := l.kernelDest(c.Good); d.Weight != c.WeightGood {
		t.Fatalf("a forged POST changed the kernel weight to %d", d.Weight)
	}

	// A real server killed while the page is open turns down on it, with
	// no reload of the page.
	run(t, ctx, "back to the page", chromedp.Navigate(base+"/"))
	waitJS(t, ctx, "the page goes live", `!document.getElementById("live").hidden`, 10*time.Second)
	eval[bool](t, ctx, `window.sameLoad = true`)
	apiRow := rowSel("api", api.addr())
	waitJS(t, ctx, "api server up", fmt.Sprintf(`document.querySelector(%s + " .health .word").textContent === "up"`, jsString(apiRow)), 10*time.Second)
	api.kill()
	killed := time.Now()
	bound := apiFall*apiInterval + 2*time.Second
	waitJS(t, ctx, "the killed server reads down", fmt.Sprintf(`document.querySelector(%s + " .health .word").textContent === "down"`, jsString(apiRow)), bound+5*time.Second)
	took := time.Since(killed)
	t.Logf("killed real server read down on the page after %v (bound fall × interval + 2 s = %v)", took.Round(time.Millisecond), bound)
	if took > bound {
		t.Errorf("the page showed the killed server down after %v, want within %v", took, bound)
	}
	waitJS(t, ctx, "its row is marked changed, on the same page load", fmt.Sprintf(`window.sameLoad === true && document.querySelector(%s).classList.contains("changed") && document.querySelector(%s).textContent.includes("changed")`, jsString(apiRow), jsString(apiRow)), 2*time.Second)

	// Without JavaScript the same tables are there, server-rendered.
	run(t, ctx, "scripts off", scripts(false), chromedp.Navigate(base+"/"))
	plain, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(apiRow)))
	if err != nil {
		t.Fatalf("read the plain page: %v", err)
	}
	if !strings.Contains(plain, "down") || !strings.Contains(plain, api.addr()) {
		t.Errorf("without scripts the api row reads %q", plain)
	}
	if live := eval[bool](t, ctx, `!document.getElementById("live").hidden`); live {
		t.Error("with scripts off the page still says it is live")
	}
	run(t, ctx, "scripts on", scripts(true))

	// Readable at 1280 px and on a phone: nothing wider than the window.
	for _, vp := range []struct {
		w, h int64
		opts []chromedp.EmulateViewportOption
	}{{1280, 900, nil}, {390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait}}} {
		run(t, ctx, fmt.Sprintf("viewport %dx%d", vp.w, vp.h), chromedp.EmulateViewport(vp.w, vp.h, vp.opts...), chromedp.Navigate(base+"/"))
		if eval[bool](t, ctx, `document.documentElement.scrollWidth > window.innerWidth + 1`) {
			t.Errorf("at %d px the page is wider than the window", vp.w)
		}
	}
	run(t, ctx, "back to 1280 px", chromedp.EmulateViewport(1280, 900))

	// Actions on, with a token: the reload turns them on, no restart.
	token := "browser-test-token-0123456789"
	tokenFile := filepath.Join(c.Dir, "lvsd.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Extra += fmt.Sprintf("\n[director.web]\nactions = true\ntoken_file = %q\n", tokenFile)
	l.write(c.render(t))
	l.reload()

	run(t, ctx, "forged post, actions on", chromedp.Navigate(forgeFrom(t, base, "web", c.Good)))
	waitJS(t, ctx, "the forged drain is refused", `document.title === "lvsd: action refused" && document.body.innerText.includes("cross-site")`, 10*time.Second)

	drain := fmt.Sprintf(`%s form[action="/actions/drain"] button`, rowSel("web", c.Good))
	run(t, ctx, "open the page with actions", chromedp.Navigate(base+"/"))
	waitJS(t, ctx, "the drain button", fmt.Sprintf(`!!document.querySelector(%s) && !document.getElementById("credential").hidden`, jsString(drain)), 10*time.Second)
	// Without the token: refused, and the kernel is untouched.
	run(t, ctx, "drain without the token", chromedp.Click(chromedp.CSS(drain)))
	waitJS(t, ctx, "refusal shown", `document.getElementById("notice").textContent.includes("Refused")`, 10*time.Second)
	l.passes(1)
	if d, _ := l.kernelDest(c.Good); d.Weight != c.WeightGood {
		t.Fatalf("drain without the token changed the kernel weight to %d", d.Weight)
	}
	// With it: drained, in the kernel table and on the page.
	run(t, ctx, "give the token", chromedp.SendKeys(chromedp.CSS("#token"), token))
	run(t, ctx, "drain with the token", chromedp.Click(chromedp.CSS(drain)))
	waitJS(t, ctx, "done shown", `document.getElementById("notice").textContent.includes("Done")`, 10*time.Second)
	l.waitWeight(c.Good, 0)
	waitJS(t, ctx, "the page shows the drain", fmt.Sprintf(`document.querySelector(%s).innerText.includes("drained") && !!document.querySelector(%s + ' form[action="/actions/undrain"]')`,
		jsString(rowSel("web", c.Good)), jsString(rowSel("web", c.Good))), 10*time.Second)
	if strings.Contains(l.logs.String(), token) {
		t.Error("the token is in the daemon's log")
	}

	// The artifact: a screenshot of the whole page as it stands (one
	// server down, one drained, one killed).
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	writeScreenshot(t, shot)
}

// writeScreenshot writes the PNG to bin/artifacts (the test artifact) and,
// with -screenshot, there too, recompressed to keep the repository small.
func writeScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&b, img.(image.Image)); err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("LVSD_ARTIFACTS")
	if dir == "" {
		dir = "../../bin/artifacts"
	}
	paths := []string{filepath.Join(dir, "status-page.png")}
	if *screenshotPath != "" {
		paths = append(paths, *screenshotPath)
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", p, b.Len())
	}
}
