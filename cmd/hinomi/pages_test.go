package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestStatusPages: a second status page shows only its groups' services,
// with its own title, description, footer and logo, and renders without
// sideways scrolling on a phone and on a desktop in real Chromium, light
// and dark (screenshots in test-artifacts/).
func TestStatusPages(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer app.Close()
	dir := t.TempDir()
	// A logo: a small PNG drawn here.
	img := image.NewRGBA(image.Rect(0, 0, 40, 40))
	for x := range 40 {
		for y := range 40 {
			img.Set(x, y, color.RGBA{200, 60, 20, 255})
		}
	}
	var logo bytes.Buffer
	if err := png.Encode(&logo, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "logo.png"), logo.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cfg := fmt.Sprintf(`listen: %s
data_dir: %s
console:
  title: Example services
  pages:
    - slug: infra
      title: Example infrastructure
      description: The machines behind our services.
      footer: Operated by the infra team
      groups: [Infrastructure]
      logo_file: %s
probes:
  - {name: shop, group: Website, type: http, target: %s/ok, interval: 1s, public: true}
  - {name: nas, group: Infrastructure, type: http, target: %s/ok, interval: 1s, public: true}
  - {name: backup-target, group: Infrastructure, type: http, target: %s/down, interval: 1s, public: true}
`, addr, filepath.Join(dir, "tower"), filepath.Join(dir, "logo.png"), app.URL, app.URL, app.URL)
	path := filepath.Join(dir, "tower.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tower := start(t, "tower", "--config", path)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	main := waitStatusPage(t, addr, map[string]string{"shop": "up", "nas": "up", "backup-target": "down"}, 20*time.Second)
	if !strings.Contains(main, `href="/status/infra">Example infrastructure</a>`) {
		t.Errorf("the main page does not link the infra page")
	}
	get := func(p string) (int, string, string) {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, _, page := get("/status/infra")
	if code != 200 || strings.Contains(page, `id="svc-shop"`) || !strings.Contains(page, `id="svc-nas"`) ||
		!strings.Contains(page, "<h1><img class=\"logo\" src=\"/status/infra/logo\"") || !strings.Contains(page, "The machines behind our services.") ||
		!strings.Contains(page, "Operated by the infra team") || !strings.Contains(page, "Some services are down") {
		t.Errorf("/status/infra: %d\n%s", code, page)
	}
	if code, ct, body := get("/status/infra/logo"); code != 200 || ct != "image/png" || body != logo.String() {
		t.Errorf("logo: %d %s (%d bytes)", code, ct, len(body))
	}
	if code, _, _ := get("/status/nosuch"); code != 404 {
		t.Errorf("an unknown page: %d", code)
	}

	// Real Chromium, phone and desktop, light and dark.
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; scripts/test installs it")
		}
		t.Skip("chromium is not installed")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx)
	defer cancelC()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()
	artifacts := filepath.Join("..", "..", "test-artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		name   string
		w, h   int64
		mobile bool
	}{{"phone", 390, 844, true}, {"desktop", 1280, 900, false}} {
		for _, scheme := range []string{"light", "dark"} {
			for _, p := range []string{"/", "/status/infra"} {
				var vopts []chromedp.EmulateViewportOption
				if v.mobile {
					vopts = append(vopts, chromedp.EmulateMobile)
				}
				err := chromedp.Do(ctx,
					chromedp.EmulateViewport(v.w, v.h, vopts...),
					chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
						_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
							Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
						return err
					}),
					chromedp.Navigate("http://"+addr+p),
					chromedp.WaitVisible(chromedp.CSS(`#svc-nas`)),
				)
				if err != nil {
					t.Fatal(err)
				}
				// Against the emulated screen's width: under mobile emulation
				// Chromium widens the layout viewport (innerWidth) to fit
				// content that overflows, so innerWidth cannot show it.
				overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.documentElement.scrollWidth > %d`, v.w)))
				if err != nil {
					t.Fatal(err)
				}
				if overflow {
					t.Errorf("%s %s %s: the page scrolls sideways", v.name, scheme, p)
				}
				bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
				if err != nil {
					t.Fatal(err)
				}
				if dark := bg != "rgb(255, 255, 255)"; dark != (scheme == "dark") {
					t.Errorf("%s %s %s: background %s", v.name, scheme, p, bg)
				}
				shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("page%s-%s-%s.png", strings.ReplaceAll(strings.TrimSuffix(p, "/"), "/", "-"), v.name, scheme)
				if err := os.WriteFile(filepath.Join(artifacts, name), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
