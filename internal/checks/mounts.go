package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/hinomi/hinomi/internal/finding"
)

// MountProber stats network and FUSE mounts with a deadline. A stat on a
// dead NFS server blocks in the kernel and cannot be cancelled, so each one
// runs in its own goroutine that is abandoned at the deadline; a mount whose
// stat is still pending is not stat'ed again (the agent calls Probe every
// cycle and must not pile up blocked goroutines), it is reported as still
// stuck since the first attempt.
type MountProber struct {
	Deadline time.Duration
	mu       sync.Mutex
	pending  map[string]time.Time
}

// NewMountProber returns a prober with the given deadline.
func NewMountProber(deadline time.Duration) *MountProber {
	return &MountProber{Deadline: deadline, pending: map[string]time.Time{}}
}

// MountAnswer is the outcome of one probe, as kept in snapshots.
type MountAnswer struct {
	Answered bool          `json:"answered"`
	Took     time.Duration `json:"took_ns"`
	// StuckSince is when the first unanswered stat began.
	StuckSince time.Time `json:"stuck_since,omitzero"`
	Err        string    `json:"error,omitempty"`
	// Errno is the error's name (ENOTCONN, ESTALE …) when stat failed.
	Errno string `json:"errno,omitempty"`
}

// deadErrno are the answers of a mount that is gone rather than slow: a
// FUSE server that died (ENOTCONN), an NFS handle the server no longer
// knows (ESTALE), a server that is down or unreachable. Permission errors
// are not among them: root is refused by other users' FUSE mounts.
var deadErrno = map[string]string{
	"ENOTCONN":     "its user-space server is gone",
	"ESTALE":       "the server no longer knows its file handle",
	"EIO":          "reading it fails with an I/O error",
	"EHOSTDOWN":    "its server is down",
	"EHOSTUNREACH": "its server is unreachable",
	"ETIMEDOUT":    "its server timed out",
	"ECONNREFUSED": "its server refuses connections",
}

// Probe stats mountpoint (stat, then statfs: what ls and df do) and waits at
// most the deadline.
func (m *MountProber) Probe(ctx context.Context, mountpoint string) MountAnswer {
	m.mu.Lock()
	if since, ok := m.pending[mountpoint]; ok {
		m.mu.Unlock()
		return MountAnswer{StuckSince: since, Took: time.Since(since)}
	}
	start := time.Now()
	m.pending[mountpoint] = start
	m.mu.Unlock()

	done := make(chan error, 1) // buffered: the goroutine never blocks on send
	helper := statHelper.Load()
	var child *exec.Cmd
	if helper != nil {
		// In a child process: a thread waiting on a FUSE server that has
		// read the request cannot be killed, not even by exit, so a stat
		// in this process would keep it from ever exiting.
		child = exec.Command((*helper)[0], append((*helper)[1:], mountpoint)...)
		var out bytes.Buffer
		child.Stdout = &out
		if err := child.Start(); err != nil {
			child = nil // stat here instead
		} else {
			go func() {
				err := child.Wait()
				if err != nil {
					if name, msg, ok := strings.Cut(strings.TrimSpace(out.String()), "\t"); ok {
						err = &statError{errno: name, msg: msg}
					}
				}
				m.mu.Lock()
				delete(m.pending, mountpoint)
				m.mu.Unlock()
				done <- err
			}()
		}
	}
	if child == nil {
		go func() {
			err := StatMount(mountpoint)
			m.mu.Lock()
			delete(m.pending, mountpoint)
			m.mu.Unlock()
			done <- err
		}()
	}
	t := time.NewTimer(m.Deadline)
	defer t.Stop()
	select {
	case err := <-done:
		a := MountAnswer{Answered: true, Took: time.Since(start)}
		var se *statError
		switch {
		case err == nil:
		case errors.As(err, &se):
			a.Err, a.Errno = se.msg, se.errno
		default:
			a.Err = err.Error()
			if errno, ok := err.(unix.Errno); ok {
				a.Errno = unix.ErrnoName(errno)
			}
		}
		return a
	case <-t.C:
	case <-ctx.Done():
	}
	if child != nil {
		// It stays blocked in the kernel until the server answers; this
		// process is free to go on and to exit.
		_ = child.Process.Kill()
	}
	return MountAnswer{StuckSince: start, Took: time.Since(start)}
}

// statHelper is the command that stats one mount in a child process
// (SetStatHelper); nil: stat in this process.
var statHelper atomic.Pointer[[]string]

// SetStatHelper makes every mount probe run argv plus the mount point in a
// child process, which must stat it as StatMount does and report an error
// as "ERRNO\tmessage" on standard output with a non-zero exit status
// (ServeStatHelper). hinomi runs itself this way.
func SetStatHelper(argv ...string) { statHelper.Store(&argv) }

// ServeStatHelper is the child's side: it stats path and returns the exit
// status, writing an error to w.
func ServeStatHelper(path string, w io.Writer) int {
	err := StatMount(path)
	if err == nil {
		return 0
	}
	name := "EUNKNOWN"
	if errno, ok := err.(unix.Errno); ok {
		name = unix.ErrnoName(errno)
	}
	fmt.Fprintf(w, "%s\t%s\n", name, err)
	return 3
}

// statError is an error reported by the stat helper.
type statError struct{ errno, msg string }

func (e *statError) Error() string { return e.msg }

// StatMount does what ls and df do to a mount point: stat, then statfs.
// A signal to the thread (Go's preemption included) can end a FUSE or
// soft-mounted NFS call with EINTR: that is no answer from the server, so
// it asks again.
func StatMount(mountpoint string) error {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Stat(mountpoint, &st) })
	if err == nil {
		var sfs unix.Statfs_t
		err = ignoringEINTR(func() error { return unix.Statfs(mountpoint, &sfs) })
	}
	return err
}

func ignoringEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}

// networkFS are the filesystem types whose stat can wait on another machine
// or on a user-space server.
func networkFS(fstype string) bool {
	switch fstype {
	case "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "afs", "lustre", "ocfs2", "gfs2", "fuse", "fuseblk", "davfs":
		return true
	}
	return strings.HasPrefix(fstype, "fuse.")
}

// mounts reads the host's mount table from PID 1's view (the host's mount
// namespace even when hinomi runs in a container).
// It is read once per run: the disk, mount and runtime checks share it.
func mounts(env *Env) ([]*procfs.MountInfo, error) {
	env.mountsOnce.Do(func() {
		_, _ = env.Src.ReadFile("/proc/1/mountinfo") // recorded for snapshots
		pfs, err := env.Src.ProcFS()
		if err != nil {
			env.mountsErr = err
			return
		}
		env.mountList, env.mountsErr = pfs.GetProcMounts(1)
		for _, m := range env.mountList {
			m.MountPoint, m.Source = unescapeMount(m.MountPoint), unescapeMount(m.Source)
		}
	})
	return env.mountList, env.mountsErr
}

// unescapeMount decodes the octal escapes the kernel writes in mountinfo
// for space, tab, newline and backslash ("/mnt/my\\040disk").
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// MountServer extracts the server from a mount source: "host:/export"
// (NFS, sshfs), "//host/share" (CIFS), "mon1,mon2:/path" (Ceph).
func MountServer(fstype, source string) string {
	switch {
	case strings.HasPrefix(source, "//"):
		h, _, _ := strings.Cut(source[2:], "/")
		return h
	case strings.HasPrefix(source, "["):
		if i := strings.Index(source, "]:"); i > 0 {
			return source[1:i]
		}
	case strings.Contains(source, ":"):
		h, _, _ := strings.Cut(source, ":")
		if _, after, ok := strings.Cut(h, "@"); ok {
			h = after
		}
		return h
	}
	if strings.HasPrefix(fstype, "fuse") {
		return "user-space server " + source
	}
	return source
}

// checkMounts is FM-C6: network and FUSE mounts whose stat does not return
// within the deadline.
func checkMounts(ctx context.Context, env *Env) (Result, error) {
	var res Result
	ms, err := mounts(env)
	if err != nil {
		return res, fmt.Errorf("mount table: %w", err)
	}
	type probe struct {
		m *procfs.MountInfo
		a MountAnswer
	}
	var probes []*probe
	for _, m := range ms {
		// /etc/pve is Proxmox's pmxcfs: when it hangs, its service is
		// the culprit, and the pve-services check says so (FM-D2).
		if networkFS(m.FSType) && m.MountPoint != "/etc/pve" {
			probes = append(probes, &probe{m: m})
		}
	}
	if len(probes) == 0 {
		return res, ErrNotApplicable
	}
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			key := fmt.Sprintf("mount-%d", i)
			err := env.Src.Probe(key, &p.a, func() error {
				p.a = env.Mounts.Probe(ctx, env.Src.Path(p.m.MountPoint))
				return nil
			})
			if err != nil {
				p.a = MountAnswer{Answered: true, Err: err.Error()}
			}
		})
	}
	wg.Wait()
	sort.Slice(probes, func(i, j int) bool { return probes[i].m.MountPoint < probes[j].m.MountPoint })
	answered := 0
	for _, p := range probes {
		if why, dead := deadErrno[p.a.Errno]; p.a.Answered && dead {
			res.Findings = append(res.Findings, deadMount(env, p.m, p.a, why))
			continue
		}
		if p.a.Answered {
			answered++
			continue
		}
		server := MountServer(p.m.FSType, p.m.Source)
		stuck := p.a.Took.Round(100 * time.Millisecond)
		lines := env.Kernel.Matching("server "+server+" not responding", "server "+server+" OK")
		since := p.a.StuckSince
		sinceNote := fmt.Sprintf("hinomi's stat got no answer in %s", stuck)
		for _, l := range lines {
			if strings.Contains(l.Text, "not responding") && l.Time != nil && l.Time.Before(since) {
				since, sinceNote = *l.Time, "the kernel first said the server was not responding at "+l.Time.Format(time.RFC3339)
				break
			}
		}
		blocked := storageWaiters(env, p.m.MountPoint)
		s := since
		vars := map[string]string{"mount": p.m.MountPoint, "server": server, "fstype": p.m.FSType, "stuck_for": stuck.String()}
		what := ""
		if id := pveStorageID(p.m.MountPoint); id != "" {
			vars["storage"], what = id, "Proxmox storage "+id+": "
		}
		res.Findings = append(res.Findings, finding.Finding{
			Mode: "FM-C6", Severity: finding.High, Subject: p.m.MountPoint,
			Summary: fmt.Sprintf("%s%s mount %s from %s does not answer (stat stuck for %s); every process that touches it will hang.",
				what, p.m.FSType, p.m.MountPoint, server, stuck),
			Since: &s,
			Evidence: finding.Evidence{
				Figures:   []finding.Figure{{Name: "stat wait", Value: p.a.Took.Seconds(), Limit: env.Mounts.Deadline.Seconds(), Unit: "s"}},
				Consumers: blocked, Lines: lines,
				Notes: []string{sinceNote, "Source " + p.m.Source + ", options " + joinOpts(p.m.SuperOptions)},
				Vars:  vars,
			},
		})
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "network/FUSE mounts answering", Value: float64(answered), Limit: float64(len(probes))})
	return res, nil
}

// storageWaiters are the processes waiting in the kernel on a FUSE or NFS
// server: those whose command line or working directory is on mountpoint,
// or every one when none can be tied to a mount.
func storageWaiters(env *Env, mountpoint string) []finding.Consumer {
	var all, here []finding.Consumer
	prefix := strings.TrimSuffix(mountpoint, "/") + "/"
	for _, pr := range env.Procs.Procs {
		if !waitsOnStorage(pr) {
			continue
		}
		c := finding.Consumer{Kind: "process", Name: pr.Comm, PID: pr.PID, Owner: pr.Owner.Label(), Value: 1}
		all = append(all, c)
		var cwd string
		// readlink of /proc/PID/cwd names the path without asking the
		// file system, so it cannot hang.
		_ = env.Src.Probe(fmt.Sprintf("cwd-%d", pr.PID), &cwd, func() error {
			var err error
			cwd, err = os.Readlink(env.Src.Path(fmt.Sprintf("/proc/%d/cwd", pr.PID)))
			return err
		})
		if strings.Contains(pr.Command(), mountpoint) || cwd == mountpoint || strings.HasPrefix(cwd, prefix) {
			here = append(here, c)
		}
	}
	if len(here) > 0 {
		return here
	}
	return all
}

// deadMount is FM-C6 for a mount that answers at once, with an error that
// means the storage behind it is gone: Proxmox's storage "with a question
// mark", an sshfs or rclone mount whose process died.
func deadMount(env *Env, m *procfs.MountInfo, a MountAnswer, why string) finding.Finding {
	server := MountServer(m.FSType, m.Source)
	lines := env.Kernel.Matching("server "+server+" not responding", "server "+server+" OK")
	var since *time.Time
	for _, l := range lines {
		if strings.Contains(l.Text, "not responding") && l.Time != nil {
			since = l.Time
			break
		}
	}
	vars := map[string]string{"mount": m.MountPoint, "server": server, "fstype": m.FSType, "error": a.Errno + " (" + a.Err + ")"}
	if id := pveStorageID(m.MountPoint); id != "" {
		vars["storage"] = id
	}
	return finding.Finding{
		Mode: "FM-C6", Severity: finding.High, Subject: m.MountPoint,
		Summary: fmt.Sprintf("%s mount %s from %s is dead: stat fails at once with %s (%s); every program that reads it gets errors.",
			m.FSType, m.MountPoint, server, a.Errno, why),
		Since: since,
		Evidence: finding.Evidence{
			Consumers: storageWaiters(env, m.MountPoint), Lines: lines,
			Notes: []string{"stat: " + a.Err, "Source " + m.Source + ", options " + joinOpts(m.SuperOptions)},
			Vars:  vars,
		},
	}
}

func joinOpts(o map[string]string) string {
	keys := make([]string, 0, len(o))
	for k, v := range o {
		if v != "" {
			k += "=" + v
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// pveStorageID is the Proxmox storage a mount point belongs to: PVE mounts
// network storage ID at /mnt/pve/ID.
func pveStorageID(mountpoint string) string {
	id, ok := strings.CutPrefix(mountpoint, "/mnt/pve/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return ""
	}
	return id
}
