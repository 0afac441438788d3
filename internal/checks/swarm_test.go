package checks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/runbook"
	"github.com/hinomi/hinomi/internal/testload"
)

// pollSwarm runs the swarm check until ok accepts the finding about
// subject, or fails after testload.ReadyTimeout.
func pollSwarm(t *testing.T, subject string, ok func(finding.Finding) bool) (finding.Finding, *Env) {
	t.Helper()
	deadline := time.Now().Add(testload.ReadyTimeout)
	var last string
	for {
		env := liveDockerEnv(t)
		res, err := checkSwarm(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Findings {
			if f.Subject == subject {
				if ok(f) {
					return f, env
				}
				last = f.Summary
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finding about %s accepted within %s; last: %q; blind: %q", subject, testload.ReadyTimeout, last, res.Blind)
		}
		time.Sleep(500 * time.Millisecond) // polling the engine; the tasks fail on their own schedule
	}
}

// On a single-node swarm: a service whose bind mount's source does not
// exist has every task rejected; it is reported with the engine's full
// error, the attempts and their span, and replays the same from a
// snapshot. A service whose task exits 3 is a restart loop with exit code
// 3. Without a swarm, the check is not applicable.
func TestSwarmLive(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	testload.Swarm(t)

	missing := fmt.Sprintf("/nonexistent/swarm-%d", os.Getpid())
	rej := fmt.Sprintf("swarm-rejected-%d", os.Getpid())
	loop := fmt.Sprintf("swarm-exit3-%d", os.Getpid())
	testload.StartService(t, image, rej, testload.ServiceSpec{Args: []string{"-stdin=false"}, BindSource: missing, RestartDelay: 500 * time.Millisecond})
	testload.StartService(t, image, loop, testload.ServiceSpec{Args: []string{"-stdin=false", "-exit-after", "300ms", "-exit-code", "3"}, RestartDelay: 500 * time.Millisecond})

	t.Run("rejected", func(t *testing.T) {
		f, _ := pollSwarm(t, "swarm service "+rej, func(f finding.Finding) bool {
			n, _ := strconv.Atoi(f.Evidence.Vars["restarts"])
			return n >= 3
		})
		full := `invalid mount config for type "bind": bind source path does not exist: ` + missing
		if f.Mode != "FM-C4" || f.Severity != finding.High {
			t.Errorf("mode %s severity %s; want FM-C4 high", f.Mode, f.Severity)
		}
		v := f.Evidence.Vars
		if v["reason"] != full || v["path"] != missing || v["service"] != rej || v["replicas"] != "1" || v["running"] != "0" {
			t.Errorf("vars %v; want the full error, path %s, service %s, 1 replica, 0 running", v, missing, rej)
		}
		for _, want := range []string{full, "tasks were rejected in", "runs 0 of 1 replicas", "does not exist on the node"} {
			if !strings.Contains(f.Summary, want) {
				t.Errorf("summary lacks %q: %s", want, f.Summary)
			}
		}
		if f.Since == nil || v["rate"] == "" {
			t.Errorf("since %v rate %q; want both", f.Since, v["rate"])
		}

		// Record, then replay from the snapshot.
		dir := filepath.Join(t.TempDir(), "snap")
		rec, err := host.NewRecorder(dir)
		if err != nil {
			t.Fatal(err)
		}
		env := liveDockerEnv(t)
		env.Src.Record(rec)
		res, err := checkSwarm(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.Close(host.Meta{Host: "test", Taken: env.Now}); err != nil {
			t.Fatal(err)
		}
		rf := findingFor(t, res, "swarm service "+rej)
		src, err := host.FromDir(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		replayed, err := checkSwarm(t.Context(), &Env{Src: src, Now: env.Now, Log: env.Log})
		if err != nil {
			t.Fatal(err)
		}
		if g := findingFor(t, replayed, "swarm service "+rej); g.Summary != rf.Summary {
			t.Errorf("replayed summary\n%s\nwant\n%s", g.Summary, rf.Summary)
		}

		// The runbook's Swarm steps are ready with the service's name.
		book, err := runbook.Load("")
		if err != nil {
			t.Fatal(err)
		}
		steps, err := book.Get("FM-C4").Steps("Confirm", rf.Evidence.Vars)
		if err != nil {
			t.Fatal(err)
		}
		var cmds []string
		for _, s := range steps {
			cmds = append(cmds, s.Lines...)
		}
		if !strings.Contains(strings.Join(cmds, "\n"), "docker service ps --no-trunc "+rej) {
			t.Errorf("confirm steps %q lack docker service ps --no-trunc %s", cmds, rej)
		}
	})

	t.Run("exit 3 loop", func(t *testing.T) {
		f, _ := pollSwarm(t, "swarm service "+loop, func(f finding.Finding) bool {
			n, _ := strconv.Atoi(f.Evidence.Vars["restarts"])
			return n >= 3
		})
		if f.Mode != "FM-C4" || f.Evidence.Vars["exit_code"] != "3" || f.Evidence.Vars["reason"] != "task: non-zero exit (3)" {
			t.Errorf("mode %s vars %v; want FM-C4 with exit code 3", f.Mode, f.Evidence.Vars)
		}
		if !strings.Contains(f.Summary, "exits with code 3") || !strings.Contains(f.Summary, "tasks failed in") {
			t.Errorf("summary: %s", f.Summary)
		}
	})
}

// A daemon outside a swarm is not a Swarm host: the check is silent.
func TestSwarmNotApplicable(t *testing.T) {
	testload.RequireDocker(t)
	env := liveDockerEnv(t)
	res, err := checkSwarm(t.Context(), env)
	switch {
	case errors.Is(err, ErrNotApplicable):
		if len(res.Findings) > 0 || len(res.Blind) > 0 {
			t.Errorf("not applicable with findings %v blind %v", res.Findings, res.Blind)
		}
	case err != nil:
		t.Fatal(err)
	default:
		t.Skip("the daemon is in a swarm (another test's?); nothing to assert")
	}
}
