package checks

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// KernelLog is the current boot's kernel log, read once per run from
// /dev/kmsg and shared by the checks that quote it.
type KernelLog struct {
	Lines []finding.Line
	// Err says why the log could not be read (nil when it was).
	Err error
}

// kmsgRecord is how the kernel log is kept in a snapshot.
type kmsgRecord struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// ReadKernelLog reads every record the kernel still holds for this boot. It
// opens /dev/kmsg non-blocking and stops at the end, so it cannot wait.
func ReadKernelLog(src *host.Source, boot time.Time, limit int) *KernelLog {
	var recs []kmsgRecord
	err := src.Probe("kmsg", &recs, func() error {
		var err error
		recs, err = readKmsg(boot, limit)
		return err
	})
	kl := &KernelLog{Err: err}
	for _, r := range recs {
		t := r.Time
		kl.Lines = append(kl.Lines, finding.Line{Time: &t, Source: "kernel", Text: r.Text})
	}
	return kl
}

func readKmsg(boot time.Time, limit int) ([]kmsgRecord, error) {
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []kmsgRecord
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(int(f.Fd()), buf)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if errors.Is(err, syscall.EPIPE) {
			continue // overwritten while reading: the next read resumes
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return out, &fs.PathError{Op: "read", Path: "/dev/kmsg", Err: err}
		}
		if n == 0 {
			break
		}
		rec, err := ParseKmsg(buf[:n], boot)
		if err != nil {
			continue
		}
		out = append(out, rec)
		if len(out) > limit {
			out = out[len(out)-limit:]
		}
	}
	return out, nil
}

// ParseKmsg parses one /dev/kmsg record: "prio,seq,usec,flags;text\n"
// followed by optional " KEY=value" dictionary lines.
func ParseKmsg(b []byte, boot time.Time) (kmsgRecord, error) {
	head, rest, ok := bytes.Cut(b, []byte(";"))
	if !ok {
		return kmsgRecord{}, fmt.Errorf("kmsg record without ';': %q", clip(string(b), 60))
	}
	f := strings.Split(string(head), ",")
	if len(f) < 3 {
		return kmsgRecord{}, fmt.Errorf("kmsg header %q: want prio,seq,usec", clip(string(head), 60))
	}
	usec, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return kmsgRecord{}, fmt.Errorf("kmsg header %q: %w", clip(string(head), 60), err)
	}
	text, _, _ := bytes.Cut(rest, []byte("\n"))
	return kmsgRecord{Time: boot.Add(time.Duration(usec) * time.Microsecond).UTC(), Text: string(text)}, nil
}

// Matching returns the lines containing any of the substrings, at most the
// last eight.
func (k *KernelLog) Matching(subs ...string) []finding.Line {
	if k == nil {
		return nil
	}
	var out []finding.Line
	for _, l := range k.Lines {
		for _, s := range subs {
			if strings.Contains(l.Text, s) {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > 8 {
		out = out[len(out)-8:]
	}
	return out
}
