package checks

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/host"
)

// journalWindow is how far back doctor reads the current boot's journal,
// and journalLines bounds what it reads (a service logging in a loop
// must not make doctor slow).
const (
	journalWindow = 6 * time.Hour
	journalLines  = 20000
)

// checkJournal is the log side of every failure mode for services: the
// current boot's systemd journal of the last hours (services' lines; the
// kernel's come from /dev/kmsg in previous-boot's check) through the
// signature engine. dockerd, containerd, kubelet, corosync, pmxcfs,
// NFS and the rest say what is wrong there before anything else shows
// it. The agent follows the journal live instead (Env.NoJournal).
func checkJournal(ctx context.Context, env *Env) (Result, error) {
	var res Result
	if env.Signatures == nil || env.NoJournal {
		return res, ErrNotApplicable
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	since := "-" + strings.TrimSuffix(journalWindow.String(), "0m0s")
	out, err := env.Src.Command(ctx, "journal-current", "journalctl", "-b", "0", "-q", "--no-pager", "-o", "short-iso",
		"--since", since, "-n", strconv.Itoa(journalLines))
	switch {
	case host.Missing(err):
		return res, ErrNotApplicable // no journalctl: no systemd journal
	case err != nil:
		res.Blind = append(res.Blind, "this boot's journal: "+err.Error())
		return res, nil
	case out.ExitCode != 0:
		// journalctl exits 1 when there is no journal at all (a container,
		// a host without systemd): nothing to read, not a fault.
		if len(bytes.TrimSpace(out.Stdout)) == 0 {
			return res, ErrNotApplicable
		}
	}
	var text bytes.Buffer
	for line := range bytes.Lines(out.Stdout) {
		// The kernel's lines are read from /dev/kmsg already.
		if bytes.Contains(line, []byte(" kernel: ")) {
			continue
		}
		text.Write(line)
	}
	res.Findings = append(res.Findings, logFindings(env, "journal -b 0", text.Bytes(), "journal: ")...)
	return res, nil
}
