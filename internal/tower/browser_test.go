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

	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		artifact(t, name, png)
	}

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
