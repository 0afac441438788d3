package proctable

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/hinomi/hinomi/internal/host"
)

// lazyCmdline is a live process's command line, read on first use. Reading
// every process's /proc/PID/cmdline copies each one's arguments out of its
// memory: 7 % of the pass's CPU over 2,000 processes, for a field that a
// finding shows for one or two of them.
type lazyCmdline struct {
	once  sync.Once
	src   *host.Source
	pid   int
	start uint64 // the process's start time in ticks: a reused pid is not it
	val   string
}

// Command is the process's command line with its secrets redacted ("" for
// a kernel thread, a zombie, or a process that has exited since the pass).
func (p *Proc) Command() string {
	if p.cmd == nil {
		return p.Cmdline
	}
	c := p.cmd
	c.once.Do(func() {
		dir := c.src.Path("/proc/" + strconv.Itoa(c.pid))
		b, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			return
		}
		// Read after the command line: if the pid was reused before
		// that read, the start time differs now.
		st, err := os.ReadFile(dir + "/stat")
		if err != nil {
			return
		}
		if s, err := parseStat(st); err != nil || s.starttime != c.start {
			return
		}
		c.val = strings.Join(RedactArgs(splitCmdline(b)), " ")
	})
	return c.val
}
