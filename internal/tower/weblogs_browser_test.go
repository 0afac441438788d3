package tower

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// contrastJS is the lowest WCAG contrast ratio of the text of the
// elements a selector finds against the background behind it.
const contrastJS = `(function (sel) {
  function rgb(s) { var m = s.match(/[\d.]+/g).map(Number); return m.length > 3 && m[3] === 0 ? null : m.slice(0, 3); }
  function lum(c) { c = c.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; }
  function bg(el) { for (; el; el = el.parentElement) { var c = rgb(getComputedStyle(el).backgroundColor); if (c) { return c; } } return [255, 255, 255]; }
  var low = 99, els = document.querySelectorAll(sel);
  if (!els.length) { return -1; }
  els.forEach(function (el) {
    var a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    low = Math.min(low, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
  });
  return low;
})(%q)`

// TestBrowserLogSearchAndTimeline drives real Chromium at phone and
// desktop widths, light and dark, over a tower fed lines from two hosts
// through its log ingest API: the search finds the line and marks the
// word; the incident's link opens the timeline with both hosts' lines
// before the instant, in time order; "load more" appends the next page;
// the basic search works with JavaScript off. Screenshots go to
// test-artifacts/.
func TestBrowserLogSearchAndTimeline(t *testing.T) {
	ctx := browser(t)
	w := newWebTower(t)
	f := newLogFeeder(t, w)
	t0 := w.t0
	w.report("pve1")
	w.report("pve2")
	f.ship("pve1",
		shipped{at: t0.Add(-40 * time.Second), unit: "corosync.service", prio: 3, text: "[TOTEM ] A processor failed, forming new configuration."},
		shipped{at: t0.Add(-12 * time.Second), unit: "kernel", prio: 2, source: "kmsg", text: "nfs: server nas1 not responding, timed out"})
	f.ship("pve2",
		shipped{at: t0.Add(-25 * time.Second), unit: "pve-cluster.service", prio: 4, text: "[status] notice: cpg_send_message retried 100 times"},
		shipped{at: t0.Add(-5 * time.Second), unit: "pvestatd.service", prio: 6, text: "storage 'nas1' is not online"})
	var ticks []shipped
	for i := range 130 {
		ticks = append(ticks, shipped{at: t0.Add(-30*time.Minute + time.Duration(i)*time.Second), unit: "cron.service", prio: 6, text: "tick " + strconv.Itoa(i)})
	}
	f.ship("pve1", ticks...)
	w.at(31 * time.Second) // both hosts silent: an incident

	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(v)
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		artifact(t, name, png)
	}
	media := func(scheme string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		})
	}
	// lines is what the page's list shows: "host text" each.
	lines := `Array.from(document.querySelectorAll('#loglines > li')).map(function (li) {
	  return li.id === 'instant' ? '|instant|' : li.querySelector('.host').textContent + ' ' + li.querySelector('.text').textContent; }).join('\n')`

	do(
		chromedp.Navigate(w.srv.URL+"/console/login"),
		chromedp.WaitVisible(chromedp.ID(`name`)),
		chromedp.SendKeys(chromedp.ID(`name`), "mika"),
		chromedp.SendKeys(chromedp.ID(`password`), consolePassword),
		chromedp.Submit(chromedp.ID(`password`)),
		chromedp.WaitVisible(chromedp.ID(`alerts-h`)),
	)
	for _, v := range []struct {
		name   string
		w, h   int64
		mobile bool
	}{{"phone", 390, 844, true}, {"desktop", 1280, 900, false}} {
		for _, scheme := range []string{"light", "dark"} {
			var vopts []chromedp.EmulateViewportOption
			if v.mobile {
				vopts = append(vopts, chromedp.EmulateMobile)
			}
			tag := v.name + "-" + scheme
			check := func(page string) {
				t.Helper()
				// A phone's browser widens its layout to fit what is too
				// wide: measure against the screen's width.
				if sw := eval(`document.documentElement.scrollWidth`); sw != strconv.FormatInt(v.w, 10) {
					t.Errorf("%s %s: the page is %s px wide on a screen of %d", tag, page, sw, v.w)
				}
				bg := eval(`getComputedStyle(document.body).backgroundColor`)
				if dark := bg != "rgb(255, 255, 255)"; dark != (scheme == "dark") {
					t.Errorf("%s %s: background %s", tag, page, bg)
				}
				for _, sel := range []string{".logline .host", ".prio", ".logline .text", "mark"} {
					if c := eval(fmt.Sprintf(contrastJS, sel)); c != "-1" {
						if r, _ := strconv.ParseFloat(c, 64); r < 4.5 {
							t.Errorf("%s %s: %s has a contrast of %.2f; want at least 4.5", tag, page, sel, r)
						}
					}
				}
			}
			do(chromedp.EmulateViewport(v.w, v.h, vopts...), media(scheme),
				chromedp.Navigate(w.srv.URL+"/console/logs?q=processor"),
				chromedp.WaitVisible(chromedp.ID(`loglines`)))
			if got := eval(lines); got != "pve1 [TOTEM ] A processor failed, forming new configuration." {
				t.Errorf("%s: the search shows %q", tag, got)
			}
			if got := eval(`document.querySelector('#loglines mark').textContent`); got != "processor" {
				t.Errorf("%s: marked %q", tag, got)
			}
			check("search")
			shot("logs-search-" + tag + ".png")

			// From the console's incident list to the timeline.
			do(chromedp.Navigate(w.srv.URL+"/console/"),
				chromedp.WaitVisible(chromedp.ID(`inc-h`)),
				chromedp.Click(chromedp.CSS(`ul.incidents a.tl`)),
				chromedp.WaitVisible(chromedp.ID(`instant`)))
			want := "pve1 [TOTEM ] A processor failed, forming new configuration.\n" +
				"pve2 [status] notice: cpg_send_message retried 100 times\n" +
				"pve1 nfs: server nas1 not responding, timed out\n" +
				"pve2 storage 'nas1' is not online\n|instant|"
			if got := eval(lines); got != want {
				t.Errorf("%s: the incident's timeline shows\n%s\nwant\n%s", tag, got, want)
			}
			if c1, c2 := eval(`getComputedStyle(document.querySelector('#loglines li.logline')).borderLeftColor`),
				eval(`getComputedStyle(document.querySelectorAll('#loglines li.logline')[1]).borderLeftColor`); c1 == c2 {
				t.Errorf("%s: both hosts' lines in colour %s", tag, c1)
			}
			check("timeline")
			shot("logs-timeline-" + tag + ".png")
		}
	}

	// The timeline's legend hides and shows a host's lines.
	do(chromedp.Navigate(w.srv.URL+"/console/"), chromedp.WaitVisible(chromedp.ID(`inc-h`)),
		chromedp.Click(chromedp.CSS(`ul.incidents a.tl`)), chromedp.WaitVisible(chromedp.ID(`instant`)),
		chromedp.Click(chromedp.CSS(`.legend li[data-host="pve2"] button`)))
	visible := `Array.from(document.querySelectorAll('#loglines li.logline')).filter(function (li) { return li.offsetParent !== null; }).map(function (li) { return li.getAttribute('data-host'); }).join(' ')`
	if got := eval(visible); got != "pve1 pve1" {
		t.Errorf("with pve2 hidden the timeline shows %q", got)
	}
	if got := eval(`document.querySelector('.legend li[data-host="pve2"] button').getAttribute('aria-pressed')`); got != "false" {
		t.Errorf("pve2's button: aria-pressed %s", got)
	}
	do(chromedp.Click(chromedp.CSS(`.legend li[data-host="pve2"] button`)))
	if got := eval(visible); got != "pve1 pve2 pve1 pve2" {
		t.Errorf("with pve2 shown again the timeline shows %q", got)
	}

	// The custom times show when the range says custom.
	do(chromedp.Navigate(w.srv.URL+"/console/logs?q=processor"), chromedp.WaitVisible(chromedp.ID(`loglines`)))
	if got := eval(`document.getElementById('since').closest('.custom').hidden`); got != "true" {
		t.Errorf("the custom times with the last hour picked: hidden %s", got)
	}
	eval(`(function () { var r = document.getElementById('range'); r.value = 'custom'; r.dispatchEvent(new Event('change')); return true; })()`)
	do(chromedp.WaitVisible(chromedp.ID(`since`)))

	// "Load more" appends the next page in place.
	do(chromedp.Navigate(w.srv.URL+"/console/logs?q=tick&range=24h"), chromedp.WaitVisible(chromedp.ID(`more`)))
	if n := eval(`document.querySelectorAll('#loglines li').length`); n != "100" {
		t.Fatalf("the first page: %s lines", n)
	}
	do(chromedp.Click(chromedp.ID(`more`)))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('#loglines li').length === 130 && !document.getElementById('more')`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("after load more: %s lines: %v", eval(`document.querySelectorAll('#loglines li').length`), err)
	}
	if got := eval(`document.querySelector('#loglines li:last-child .text').textContent`); got != "tick 0" {
		t.Errorf("the last line after load more: %q", got)
	}
	if u := eval(`location.pathname + location.search`); !strings.Contains(u, "q=tick") || strings.Contains(u, "more=") {
		t.Errorf("load more left the page: %s", u)
	}

	// Without JavaScript: the form is a plain GET form.
	do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}),
		chromedp.Navigate(w.srv.URL+"/console/logs"),
		chromedp.WaitVisible(chromedp.ID(`q`)),
		chromedp.WaitVisible(chromedp.ID(`since`)), // shown: no script hides the custom range
		chromedp.SendKeys(chromedp.ID(`q`), `"not online"`),
		chromedp.Submit(chromedp.ID(`q`)),
		chromedp.WaitVisible(chromedp.ID(`loglines`)),
	)
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(`loglines`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "storage 'nas1' is not online") || strings.Contains(text, "processor") {
		t.Errorf("the search without JavaScript: %q", text)
	}
	shot("logs-search-nojs.png")
}
