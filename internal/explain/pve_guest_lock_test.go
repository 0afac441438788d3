package explain

import (
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/runbook"
)

// The file lock and the config lock need different steps: `pct unlock`
// is exactly what hangs on a held lock file.
func TestGuestLockSteps(t *testing.T) {
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text, want, notWant string
		kind, held          string
	}{
		{"can't lock file '/run/lock/lxc/pve-config-110.lock' - got timeout", "fuser -v /run/lock/lxc/pve-config-110.lock", "pct unlock", "lxc", "file"},
		{"can't lock file '/var/lock/qemu-server/lock-105.conf' - got timeout", "fuser -v /var/lock/qemu-server/lock-105.conf", "qm unlock", "qemu", "file"},
		{"+ pct fstrim 101 --ignore-mountpoints true\nCT is locked (snapshot-delete)", "pct unlock 101", "fuser", "lxc", "config"},
		{"VM 105 is locked (backup)", "qm unlock 105", "fuser", "qemu", "config"},
	} {
		in := &Input{Text: tc.text, Lines: strings.Split(tc.text, "\n"), Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Host: "ovh1"}
		f := pveGuestLock()
		if f.Detect(in) == 0 {
			t.Errorf("%q not detected", tc.text)
			continue
		}
		res, err := f.Explain(in)
		if err != nil || len(res.Findings) != 1 {
			t.Errorf("%q: %v %+v", tc.text, err, res)
			continue
		}
		v := res.Findings[0].Evidence.Vars
		if v["guest_kind"] != tc.kind || v["lock_held"] != tc.held {
			t.Errorf("%q: vars %v", tc.text, v)
		}
		steps, err := book.Get("FM-D1").Steps("Recover", v)
		if err != nil {
			t.Fatal(err)
		}
		var ready []string
		for _, s := range steps {
			if s.Ready {
				ready = append(ready, strings.Join(s.Lines, "\n"))
			}
		}
		all := strings.Join(ready, "\n")
		if !strings.Contains(all, tc.want) || strings.Contains(all, tc.notWant) {
			t.Errorf("%q: ready steps\n%s\nwant %q, not %q", tc.text, all, tc.want, tc.notWant)
		}
	}
}
