package tower

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/alerting"
	"github.com/hinomi/hinomi/internal/push"
	"github.com/hinomi/hinomi/internal/web"
)

// The tower's side of push monitors (internal/push): the /push/TOKEN
// endpoint, the latest reports per monitor, and a signal per monitor for
// the alert engine. Reports are kept in memory: after a restart a job is
// judged from the tower's start, as a host's heartbeat is.

// pushHandler takes the jobs' reports.
func (t *Tower) pushHandler() http.Handler {
	return &push.Handler{Lookup: t.pushLookup, Record: t.pushRecord, Now: func() time.Time { return t.now() }}
}

// pushLookup finds the monitor of a token, comparing in constant time.
func (t *Tower) pushLookup(token string) (string, bool) {
	name, found := "", false
	for _, p := range t.cfg.Load().Pushes {
		if subtle.ConstantTimeCompare([]byte(p.Token), []byte(token)) == 1 {
			name, found = p.Name, true
		}
	}
	return name, found
}

func (t *Tower) pushRecord(name string, p push.Ping) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pushes == nil {
		t.pushes = map[string]*push.State{}
	}
	st := t.pushes[name]
	if st == nil {
		st = &push.State{}
		t.pushes[name] = st
	}
	st.Apply(p)
	t.log.Info("push report", "monitor", name, "status", string(p.Kind), "from", p.From)
	return nil
}

// pushSignals judges every push monitor.
func (e *evaluation) pushSignals(rule alerting.Rule) []signal {
	var sigs []signal
	for i := range e.cfg.Pushes {
		spec := &e.cfg.Pushes[i]
		var st push.State
		if s := e.st.pushes[spec.Name]; s != nil {
			st = *s
		}
		v := push.Judge(spec, st, e.now, e.st.watchFrom)
		al := e.alertFor("push/"+spec.Name, "job:"+spec.Name, "push", "Job "+spec.Name+" did not run as expected", "high", "FM-C3", "group", spec.Group)
		al.Summary = "Job " + spec.Name + ": " + v.Reason
		if len(v.Detail) > 0 {
			al.Summary = strings.Join(v.Detail[:1], "")
		}
		e.pushDetail[spec.Name] = v.Detail
		sigs = append(sigs, signal{alert: al, obs: alerting.Observation{Bad: v.Down, BadSince: v.Since}, rule: rule})
	}
	return sigs
}

// pushMessageDetail is what a push monitor's notification adds: the
// job's last output lines.
func (e *evaluation) pushMessageDetail(key string) []string {
	name := strings.TrimPrefix(key, "push/")
	d, ok := e.pushDetail[name]
	if !ok {
		d = e.st.pushDetail[name]
	}
	if len(d) > 1 {
		return d[1:]
	}
	return nil
}

// validatePushes checks the push monitors of a configuration.
func (c *Config) validatePushes(bad func(msg string, path ...any)) {
	names, tokens := map[string]bool{}, map[string]bool{}
	for i := range c.Pushes {
		p := &c.Pushes[i]
		if !c.readSecret(bad, &p.Token, p.TokenFile, "pushes", i, "token") {
			continue
		}
		p.TokenFile = ""
		if err := p.Validate(); err != nil {
			bad(err.Error(), "pushes", i)
			continue
		}
		if names[p.Name] {
			bad(fmt.Sprintf("push monitor %q is listed twice", p.Name), "pushes", i, "name")
		}
		if tokens[p.Token] {
			bad("two push monitors share a token: each job needs its own", "pushes", i, "token")
		}
		names[p.Name], tokens[p.Token] = true, true
	}
}

// pushServices are the push monitors as the status page shows them: up
// or down with the plain reason, the last report's time, no chart.
func (t *memState) pushServices(cfg *Config, now time.Time, publicOnly bool) []web.Service {
	var out []web.Service
	for i := range cfg.Pushes {
		spec := &cfg.Pushes[i]
		if publicOnly && !spec.Public {
			continue
		}
		var st push.State
		if s := t.pushes[spec.Name]; s != nil {
			st = *s
		}
		v := push.Judge(spec, st, now, t.watchFrom)
		sv := web.Service{Name: spec.Name, Group: spec.Group, Kind: "job", Status: "up",
			Uptime: map[string]float64{"24h": -1, "7d": -1, "30d": -1, "90d": -1}}
		if st.Last != nil {
			sv.LastCheck = st.Last.At
		} else {
			sv.Status = "unknown"
			sv.Message = "has not reported yet"
		}
		if v.Down {
			sv.Status, sv.Since, sv.Message = "down", v.Since, v.Reason
		}
		out = append(out, sv)
	}
	return out
}
