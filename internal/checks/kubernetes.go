package checks

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/kube"
)

// The Kubernetes API is read once per run with client-go's REST
// transport (kubeconfig auth: certificates, tokens, exec plugins), from
// the first kubeconfig found or in-cluster, read-only: nodes, pods and
// Warning events. What it said is reduced to the kube model (no specs, no
// environment, no credentials) and recorded as the probe "kubernetes",
// which doctor --from replays.

// kubeCallTimeout bounds each call to the API server: one that does not
// answer within it is unreachable, and doctor moves on.
const kubeCallTimeout = 3 * time.Second

// kubeBudget bounds the whole reading (all pages of pods, events, the
// certificate).
const kubeBudget = 8 * time.Second

// kubePage is how many objects one list call asks for.
const kubePage = 500

// kubeState is what the API server said, as recorded in a snapshot.
type kubeState struct {
	// Config is where the client configuration came from: a kubeconfig
	// path or "in-cluster".
	Config string `json:"config"`
	Server string `json:"server"`
	// Unreachable says the server did not answer (refused, no route, no
	// answer within Timeout); Error says why in the client's words.
	Unreachable bool    `json:"unreachable,omitempty"`
	Timeout     float64 `json:"timeout_seconds,omitempty"`
	Error       string  `json:"error,omitempty"`
	// Unseen lists what could not be read (events forbidden, pods cut
	// short by the budget).
	Unseen  []string     `json:"unseen,omitempty"`
	Cluster kube.Cluster `json:"cluster"`
}

// kubeconfigPaths are where a kubeconfig is looked for, in order, after
// $KUBECONFIG: the user's, kubeadm's admin one on a control-plane node,
// k3s's.
func kubeconfigPaths() []string {
	var ps []string
	if v := os.Getenv("KUBECONFIG"); v != "" {
		ps = append(ps, filepath.SplitList(v)...)
	}
	if home, err := os.UserHomeDir(); err == nil {
		ps = append(ps, filepath.Join(home, ".kube", "config"))
	}
	return append(ps, "/etc/kubernetes/admin.conf", "/etc/rancher/k3s/k3s.yaml")
}

// checkKubernetes is FM-C4 (pods that cannot run), FM-D10 (nodes lost or
// under pressure) and FM-C7 (a node's address changed) as the API server
// sees them; the diagnosis is kube.Diagnose, shared with hinomi explain.
func checkKubernetes(ctx context.Context, env *Env) (Result, error) {
	var res Result
	var st kubeState
	err := env.Src.Probe("kubernetes", &st, func() error {
		var err error
		st, err = readKubeBounded(ctx)
		return err
	})
	// On a control-plane node, a changed address is found on the host:
	// the API server is then out of reach.
	moved, movedOK := controlPlaneMoved(ctx, env, st.Server)
	switch {
	case (host.Missing(err) || errors.Is(err, rest.ErrNotInCluster)) && movedOK:
		res.Findings = append(res.Findings, moved)
		return res, nil
	case host.Missing(err) || errors.Is(err, rest.ErrNotInCluster):
		return res, ErrNotApplicable
	case err != nil:
		return res, err
	}
	where := fmt.Sprintf("Kubernetes API at %s (%s)", st.Server, st.Config)
	if st.Error != "" && len(st.Cluster.Nodes) == 0 && len(st.Cluster.Pods) == 0 {
		res.Blind = append(res.Blind, where+": "+st.Error)
		if movedOK {
			res.Findings = append(res.Findings, moved)
		}
		return res, nil
	}
	if st.Error != "" {
		res.Blind = append(res.Blind, where+": "+st.Error) // nodes read, pods not
	}
	for _, u := range st.Unseen {
		res.Blind = append(res.Blind, where+": "+u)
	}
	if st.Cluster.Source == "" {
		st.Cluster.Source = "the " + where
	}
	st.Cluster.Moved = env.KubeAddrs.Observe(st.Cluster.Nodes, env.Now)
	res.Findings = kube.Diagnose(&st.Cluster, env.Now)
	if movedOK && !hasKey(res.Findings, moved.Key) {
		res.Findings = append(res.Findings, moved)
	}
	ready := 0
	for i := range st.Cluster.Nodes {
		if c, ok := st.Cluster.Nodes[i].Condition("Ready"); ok && c.Status == "True" {
			ready++
		}
	}
	failing := 0
	for _, f := range res.Findings {
		if f.Mode == "FM-C4" {
			failing++
		}
	}
	res.Headroom = append(res.Headroom,
		finding.Figure{Name: "Kubernetes nodes Ready", Value: float64(ready), Limit: float64(len(st.Cluster.Nodes)), Source: where},
		finding.Figure{Name: "Kubernetes pods that cannot run", Value: float64(failing), Limit: float64(len(st.Cluster.Pods)), Source: where},
	)
	return res, nil
}

// kubeConfig finds the client configuration: the first kubeconfig that
// exists, else in-cluster. None gives an error wrapping fs.ErrNotExist.
// The kubeconfig is read directly, not through env.Src: it holds
// credentials, which a snapshot must not; what the API server said is
// what gets recorded.
func kubeConfig() (*rest.Config, string, error) {
	for _, p := range kubeconfigPaths() {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			continue
		}
		if err != nil {
			return nil, p, err
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
		if err != nil {
			return nil, p, fmt.Errorf("kubeconfig %s: %w", p, err)
		}
		return cfg, p, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, "", fmt.Errorf("no kubeconfig (%s) and not in a cluster: %w", strings.Join(kubeconfigPaths(), ", "), fs.ErrNotExist)
	}
	return cfg, "in-cluster", nil
}

// kubeGrace is how long past kubeBudget the reading may take before the
// check gives up on it: the calls honour their deadlines, but a
// kubeconfig's exec credential plugin (aws eks get-token, an OIDC
// helper) is a program of its own that may not.
const kubeGrace = 2 * time.Second

// readKubeBounded is readKube with a hard stop: past kubeBudget and
// kubeGrace the check reports the server as not answering and moves on,
// leaving the reading to finish (or not) on its own.
func readKubeBounded(ctx context.Context) (kubeState, error) {
	type result struct {
		st  kubeState
		err error
	}
	cfg, from, err := kubeConfig()
	if err != nil {
		return kubeState{}, err
	}
	boundExecPlugin(cfg)
	done := make(chan result, 1)
	go func() {
		st, err := readKube(ctx, cfg, from)
		done <- result{st, err}
	}()
	t := time.NewTimer(kubeBudget + kubeGrace)
	defer t.Stop()
	select {
	case r := <-done:
		return r.st, r.err
	case <-t.C:
		return kubeState{
			Config: from, Server: cfg.Host, Unreachable: true, Timeout: (kubeBudget + kubeGrace).Seconds(),
			Error: fmt.Sprintf("no answer within %s (a credential plugin or the server hangs)", kubeBudget+kubeGrace),
		}, nil
	case <-ctx.Done():
		return kubeState{}, ctx.Err()
	}
}

// readKube reads nodes, pods and Warning events, every call under
// kubeCallTimeout and all of them under kubeBudget. A server that does
// not answer is recorded as such, not returned as an error: it is what
// doctor reports.
func readKube(ctx context.Context, cfg *rest.Config, from string) (kubeState, error) {
	var st kubeState
	st.Config, st.Server = from, cfg.Host
	if cfg.Host == "" {
		st.Error = "the kubeconfig names no server"
		return st, nil
	}
	cfg.Timeout = kubeCallTimeout
	cfg.UserAgent = "hinomi"
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		st.Error = err.Error()
		return st, nil
	}
	base, err := url.Parse(strings.TrimRight(cfg.Host, "/") + strings.TrimRight(cfg.APIPath, "/"))
	if err != nil {
		st.Error = err.Error()
		return st, nil
	}
	ctx, cancel := context.WithTimeout(ctx, kubeBudget)
	defer cancel()
	st.Cluster.Server = cfg.Host

	var nodes kube.APIList[kube.APINode]
	if err := kubeGet(ctx, hc, base, "/api/v1/nodes", &nodes); err != nil {
		st.fail("list nodes", err)
		return st, nil
	}
	for i := range nodes.Items {
		st.Cluster.Nodes = append(st.Cluster.Nodes, kube.FromNode(&nodes.Items[i]))
	}
	cont := ""
	for {
		var pods kube.APIList[kube.APIPod]
		q := fmt.Sprintf("/api/v1/pods?limit=%d", kubePage)
		if cont != "" {
			q += "&continue=" + url.QueryEscape(cont)
		}
		if err := kubeGet(ctx, hc, base, q, &pods); err != nil {
			if len(st.Cluster.Pods) == 0 {
				st.fail("list pods", err)
			} else {
				st.Unseen = append(st.Unseen, fmt.Sprintf("pods after the first %d: %v", len(st.Cluster.Pods), err))
			}
			break
		}
		for i := range pods.Items {
			st.Cluster.Pods = append(st.Cluster.Pods, kube.FromPod(&pods.Items[i]))
		}
		if cont = pods.Metadata.Continue; cont == "" {
			break
		}
	}
	var events kube.APIList[kube.APIEvent]
	if err := kubeGet(ctx, hc, base, fmt.Sprintf("/api/v1/events?fieldSelector=type%%3DWarning&limit=%d", kubePage), &events); err != nil {
		st.Unseen = append(st.Unseen, "Warning events: "+err.Error())
	} else {
		for i := range events.Items {
			if e, ok := kube.FromEvent(&events.Items[i]); ok {
				st.Cluster.Events = append(st.Cluster.Events, e)
			}
		}
	}
	st.Cluster.CertIPs = certIPs(ctx, cfg.Host)
	return st, nil
}

// fail records why a call that the reading needs failed.
func (st *kubeState) fail(call string, err error) {
	var ke *kubeError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		st.Unreachable, st.Timeout = true, kubeCallTimeout.Seconds()
		st.Error = fmt.Sprintf("%s: no answer within %s", call, kubeCallTimeout)
	case errors.As(err, &ke):
		st.Error = call + ": " + ke.Error()
	default:
		var oe *net.OpError
		if errors.As(err, &oe) || refused(err) {
			st.Unreachable = true
		}
		st.Error = call + ": " + err.Error()
	}
}

// kubeError is an API server's refusal (401, 403, 5xx) with its message.
type kubeError struct {
	code int
	msg  string
}

func (e *kubeError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.msg) }

// kubeGet GETs path under base into v, within kubeCallTimeout.
func kubeGet(ctx context.Context, hc *http.Client, base *url.URL, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return context.DeadlineExceeded
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var s struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &s) == nil && s.Message != "" {
			msg = s.Message
		}
		return &kubeError{resp.StatusCode, oneLine(msg, 300)}
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		if ctx.Err() != nil {
			return context.DeadlineExceeded
		}
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// certIPs reads the IP addresses the API server's certificate is valid
// for, from the TLS handshake alone: nothing is sent. Verification is
// off on purpose: the certificate is read, not trusted, and the one whose
// addresses no longer fit is exactly the one that would fail it.
func certIPs(ctx context.Context, server string) []string {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" {
		return nil
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "443")
	}
	ctx, cancel := context.WithTimeout(ctx, kubeCallTimeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}} //nolint:gosec // read, not trusted
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	var out []string
	for _, ip := range certs[0].IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// controlPlaneMoved is FM-C7 on a kubeadm control-plane node: its
// kube-apiserver manifest advertises an address the host no longer has.
func controlPlaneMoved(ctx context.Context, env *Env, server string) (finding.Finding, bool) {
	b, err := env.Src.ReadFile(kube.ManifestPath)
	if err != nil {
		return finding.Finding{}, false
	}
	adv := kube.ManifestAdvertiseAddr(string(b))
	if adv == "" {
		return finding.Finding{}, false
	}
	out, err := env.Src.Command(ctx, "ip-addr", "ip", "-o", "addr", "show")
	if err != nil || out.ExitCode != 0 {
		return finding.Finding{}, false
	}
	return kube.HostAddressFinding(env.Host, adv, kube.ParseIPAddr(string(out.Stdout)), server)
}

func hasKey(fs []finding.Finding, key string) bool {
	for _, f := range fs {
		if f.Key == key {
			return true
		}
	}
	return false
}

// execPluginLimit is how long a kubeconfig's credential plugin may run.
const execPluginLimit = 5 * time.Second

// boundExecPlugin runs a kubeconfig's exec credential plugin under
// coreutils' timeout: client-go starts the plugin without a deadline, and
// one that waits for a login that never comes would outlive the check
// (and, in the agent, pile up one per cycle).
func boundExecPlugin(cfg *rest.Config) {
	e := cfg.ExecProvider
	if e == nil || e.Command == "" {
		return
	}
	timeout, err := exec.LookPath("timeout")
	if err != nil {
		return
	}
	secs := strconv.Itoa(int(execPluginLimit.Seconds()))
	e.Args = append([]string{"-k", "1", secs, e.Command}, e.Args...)
	e.Command = timeout
}
