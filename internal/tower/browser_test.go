package tower

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium (Debian's package) for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; scripts/test installs it")
		}
		t.Skip("chromium is not installed")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return ctx
}

// artifact saves a screenshot under test-artifacts/ at the module root.
func artifact(t *testing.T, name string, png []byte) {
	t.Helper()
	dir := filepath.Join("..", "..", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// drive is what a test does in the browser: run steps, read an element's
// text, save a screenshot; each fails the test on an error.
func drive(ctx context.Context, t *testing.T) (do func(...chromedp.Action[chromedp.Void]), text func(sel string) string, shot func(name string)) {
	do = func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	text = func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	shot = func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		artifact(t, name, png)
	}
	return do, text, shot
}

// TestBrowserStatusPageAndConsole drives real Chromium: the status page
// renders its services, shows an incident once a probe fails, and the
// console's acknowledge button works.
func TestBrowserStatusPageAndConsole(t *testing.T) {
	ctx := browser(t)
	w := newWebTower(t)
	w.report("pve1")
	w.probe("web", "Website", "up", true, "")
	w.probe("api", "Website", "up", true, "")
	w.at(time.Second)

	do, text, shot := drive(ctx, t)

	do(chromedp.Navigate(w.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#svc-web`)))
	shot("status-page-up.png")
	if h := text(`header.top`); !contains(h, "All services are working") {
		t.Errorf("status header: %q", h)
	}

	// The web service starts failing: an incident appears on the page.
	w.c.Set(w.t0.Add(2 * time.Second))
	w.report("pve1")
	w.probe("web", "Website", "down", true, "")
	w.at(2 * time.Second)
	do(chromedp.Navigate(w.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`ul.incidents`)))
	shot("status-page-incident.png")
	if inc, h := text(`ul.incidents`), text(`header.top`); !contains(inc, "web not working") || !contains(inc, "web stopped working.") || !contains(h, "Some services are down") {
		t.Errorf("after the failure: header %q, incidents %q", h, inc)
	}

	// The console: sign in, acknowledge the alert with the button.
	do(
		chromedp.Navigate(w.srv.URL+"/console/login"),
		chromedp.WaitVisible(chromedp.ID(`name`)),
		chromedp.SendKeys(chromedp.ID(`name`), "mika"),
		chromedp.SendKeys(chromedp.ID(`password`), consolePassword),
		chromedp.Submit(chromedp.ID(`password`)),
		chromedp.WaitVisible(chromedp.ID(`alerts-h`)),
		chromedp.SendKeys(chromedp.CSS(`form.inline input[name="comment"]`), "looking"),
		chromedp.Click(chromedp.CSS(`form.inline button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
	)
	shot("console-acknowledged.png")
	if body := text(`#alerts-h + table tbody`); !contains(body, "acknowledged by mika") {
		t.Errorf("after the click: %q", body)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestBrowserIncidentUpdateFromConsole drives real Chromium at a phone's
// and a desktop's width: an operator posts an incident update in the
// console, continues it, and the status page shows both, newest first,
// with the service it names marked.
func TestBrowserIncidentUpdateFromConsole(t *testing.T) {
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"phone", 390, 844, true}, {"desktop", 1280, 900, false}} {
		t.Run(size.name, func(t *testing.T) {
			ctx := browser(t)
			w := newWebTower(t)
			w.report("pve1")
			w.probe("web", "Website", "up", true, "")
			w.probe("api", "Website", "up", true, "")
			w.at(time.Second)
			do, text, shot := drive(ctx, t)
			vp := chromedp.EmulateViewport(size.width, size.height)
			if size.mobile {
				vp = chromedp.EmulateViewport(size.width, size.height, chromedp.EmulateMobile)
			}
			do(vp,
				chromedp.Navigate(w.srv.URL+"/console/login"),
				chromedp.WaitVisible(chromedp.ID(`name`)),
				chromedp.SendKeys(chromedp.ID(`name`), "mika"),
				chromedp.SendKeys(chromedp.ID(`password`), consolePassword),
				chromedp.Submit(chromedp.ID(`password`)),
				chromedp.WaitVisible(chromedp.ID(`updates-h`)),
				chromedp.SendKeys(chromedp.ID(`u-title`), "Logins are slow"),
				chromedp.SetValue(chromedp.ID(`u-status`), "investigating"),
				chromedp.SendKeys(chromedp.ID(`u-message`), "Some sign-ins take a minute; we are looking."),
				chromedp.Click(chromedp.CSS(`input[name="service"][value="api"]`)),
			)
			shot("console-incident-update-" + size.name + ".png")
			do(chromedp.Submit(chromedp.ID(`u-message`)), chromedp.WaitVisible(chromedp.CSS(`.flash`)))
			if f := text(`.flash`); !contains(f, "incident update posted (investigating)") {
				t.Fatalf("after posting: %q", f)
			}
			// The second update continues the first: the console offers it.
			w.c.Set(w.t0.Add(5 * time.Minute))
			do(chromedp.Navigate(w.srv.URL+"/console/"), chromedp.WaitVisible(chromedp.ID(`updates-h`)))
			thread, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#u-continue option[value^="thread-"]').value`))
			if err != nil {
				t.Fatalf("the console offers no thread to continue: %v", err)
			}
			do(
				chromedp.SetValue(chromedp.ID(`u-continue`), thread),
				chromedp.SetValue(chromedp.ID(`u-status`), "identified"),
				chromedp.SendKeys(chromedp.ID(`u-message`), "A slow directory server; moving to the spare."),
				chromedp.Submit(chromedp.ID(`u-message`)),
				chromedp.WaitVisible(chromedp.CSS(`.flash`)),
			)
			if inc := text(`#inc-h + ul`); !contains(inc, "Logins are slow") || !contains(inc, "identified by mika") {
				t.Errorf("the console's incidents: %q", inc)
			}

			do(chromedp.Navigate(w.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`ul.incidents`)))
			shot("status-page-incident-update-" + size.name + ".png")
			inc := text(`ul.incidents`)
			first, second := strings.Index(inc, "A slow directory server"), strings.Index(inc, "Some sign-ins take a minute")
			if !contains(inc, "Logins are slow") || first < 0 || second < 0 || first > second ||
				!contains(inc, "2026-11-25 03:05 UTC") || !contains(inc, "2026-11-25 03:00 UTC") {
				t.Errorf("the page's incidents, want both updates newest first with their times: %q", inc)
			}
			if mark := text(`#svc-api .svc-incident`); !contains(mark, "Incident: identified") {
				t.Errorf("api's mark: %q", mark)
			}
			if h := text(`header.top`); !contains(h, "Some services are slow or partly working") {
				t.Errorf("header during the incident: %q", h)
			}
			// Nothing overflows the width.
			wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`))
			if err != nil || wide {
				t.Errorf("the page is wider than the screen (%v)", err)
			}
		})
	}
}
