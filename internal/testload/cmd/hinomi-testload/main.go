// Command hinomi-testload creates real kernel resources and holds them, so
// that hinomi's tests and benchmarks can diagnose a host under real load.
//
// It creates, in this order:
//
//   - -watches N inotify watches on N distinct files it creates in a new
//     temporary directory (made inside -dir, or $TMPDIR, or /tmp), spread
//     round-robin across -instances K inotify instances;
//   - -files M open file descriptors on /dev/null, raising its own
//     RLIMIT_NOFILE soft limit to the hard limit when M requires it;
//   - -threads T extra OS threads, each held by a goroutine locked to it;
//   - with -stat PATH, one more thread (never the main one) that calls
//     stat(2) on PATH, so that a hung mount there blocks it in the kernel;
//   - -children C child processes, each a copy of this program re-executed in
//     a minimal idle mode (-idle) that dies with its parent (PR_SET_PDEATHSIG);
//   - with -fork-until-full, bare forked children (no Go runtime of their
//     own, so one task each) until fork fails with EAGAIN because a pids
//     limit is reached (at most 4096), then one of them is let go so that
//     the program itself keeps room to run;
//   - with -hog-mb M, after the ready line, a child (-hog) that allocates and
//     touches M MiB and holds them: under a memory limit the kernel's OOM
//     killer ends that child, and the program keeps running;
//   - with -write-mb M, before the ready line, a file of M MiB of
//     random bytes at -write-to (default /hinomi-testload.data: in a
//     container, its writable layer);
//   - with -log-mb M, after the ready line, M MiB of log lines on stdout
//     (in a container, its log file);
//   - with -exit-after D, the program exits with status -exit-code D after
//     the ready line (a crashing service, for restart-loop tests).
//
// With -say TEXT it only prints TEXT and exits with status -exit-code at
// once: a health-check command for a FROM scratch image, which has no
// shell.
//
// When everything exists it prints exactly one line to stdout:
//
//	ready pid=<pid> watches=<N> instances=<K> files=<M> children=<C> [forked=<F>]
//
// and then holds the resources until standard input reaches end of file or
// SIGTERM or SIGINT arrives (with -stdin=false, only a signal ends it). It
// then releases everything, removes the temporary directory it made and exits
// 0. Any error is reported on stderr and the exit status is 1.
//
// It uses only the standard library and is meant to be built with
// CGO_ENABLED=0, so the binary is static and runs in a FROM scratch image.
package main

import (
	"bufio"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// fdHeadroom is the number of descriptors kept free beyond the requested
// ones, for the runtime, std streams, the temporary directory and exec.
const fdHeadroom = 64

// watchMask is the event mask of every inotify watch. The events do not
// matter (nothing reads them); the watches only have to exist.
const watchMask = syscall.IN_MODIFY | syscall.IN_ATTRIB | syscall.IN_CLOSE_WRITE |
	syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF

func init() {
	// Children are started from the main goroutine, which stays locked to the
	// main thread: PR_SET_PDEATHSIG fires when the thread that forked a child
	// exits, and the main thread lives as long as the process.
	runtime.LockOSThread()
}

type config struct {
	watches   int
	instances int
	files     int
	children  int
	threads   int
	dir       string
	stat      string
	idle      bool
	stdin     bool
	// nofilePct, when set, lowers RLIMIT_NOFILE once everything is open so
	// that the open descriptors fill that percentage of it.
	nofilePct int
	// forkFull forks bare children until a pids limit refuses one.
	forkFull bool
	// hogMB, when set, starts a child that allocates that many MiB after
	// the ready line; hog is that child's mode.
	hogMB int
	hog   bool
	// exitAfter, when set, ends the program with status exitCode that
	// long after the ready line.
	exitAfter time.Duration
	exitCode  int
	// say, when set, is printed and the program exits with exitCode.
	say string
	// logLines are printed after the ready line (a service logging its
	// distress), and the program goes on.
	logLines multiString
	// writeMB MiB are written to writeTo before the ready line; logMB
	// MiB of lines go to stdout after it.
	writeMB int
	writeTo string
	logMB   int
}

// multiString is a repeatable string flag.
type multiString []string

func (m *multiString) String() string     { return strings.Join(*m, "\n") }
func (m *multiString) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var cfg config
	fs := flag.NewFlagSet("hinomi-testload", flag.ContinueOnError)
	fs.IntVar(&cfg.watches, "watches", 0, "number of inotify `watches` to add, each on its own file")
	fs.IntVar(&cfg.instances, "instances", 1, "number of inotify `instances` the watches are spread across")
	fs.IntVar(&cfg.files, "files", 0, "number of extra open file `descriptors` (on /dev/null)")
	fs.IntVar(&cfg.children, "children", 0, "number of idle child `processes` (copies of this program)")
	fs.IntVar(&cfg.threads, "threads", 0, "number of extra OS `threads`")
	fs.StringVar(&cfg.stat, "stat", "", "call stat on `path` from a thread other than the main one (a hung mount there blocks that thread)")
	fs.StringVar(&cfg.dir, "dir", "", "`directory` in which the temporary directory of watched files is made (default: $TMPDIR or /tmp)")
	fs.BoolVar(&cfg.idle, "idle", false, "internal: run as an idle child that waits for a signal or its parent's death")
	fs.IntVar(&cfg.nofilePct, "nofile-percent", 0, "when everything is open, lower RLIMIT_NOFILE so that the open descriptors fill this `percentage` of it")
	fs.BoolVar(&cfg.stdin, "stdin", true, "also exit when standard input reaches end of file")
	fs.BoolVar(&cfg.forkFull, "fork-until-full", false, "fork bare children until fork fails with EAGAIN (a pids limit), then free one slot")
	fs.IntVar(&cfg.hogMB, "hog-mb", 0, "after the ready line, start a child that allocates and touches this many `MiB`")
	fs.BoolVar(&cfg.hog, "hog", false, "internal: run as the memory-hog child of -hog-mb")
	fs.DurationVar(&cfg.exitAfter, "exit-after", 0, "exit with status -exit-code this `long` after the ready line (0: never)")
	fs.IntVar(&cfg.exitCode, "exit-code", 0, "exit `status` for -exit-after and -say")
	fs.Var(&cfg.logLines, "log", "print this `line` after the ready line, then go on (repeatable)")
	fs.StringVar(&cfg.say, "say", "", "print this `text` to stdout and exit with status -exit-code at once (a health-check command)")
	fs.IntVar(&cfg.writeMB, "write-mb", 0, "before the ready line, write a file of this many `MiB` at -write-to")
	fs.StringVar(&cfg.writeTo, "write-to", "/hinomi-testload.data", "`path` of the -write-mb file")
	fs.IntVar(&cfg.logMB, "log-mb", 0, "after the ready line, print this many `MiB` of log lines to stdout")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fatalf("unexpected arguments: %q", fs.Args())
	}
	if cfg.say != "" {
		fmt.Println(cfg.say)
		os.Exit(cfg.exitCode)
	}
	if cfg.idle {
		idle()
		return
	}
	if cfg.hog {
		hog(cfg.hogMB)
		return
	}
	if err := run(cfg, os.Stdin, os.Stdout); err != nil {
		var ex exitStatus
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fatalf("%v", err)
	}
}

// exitStatus ends run with a chosen exit status (-exit-after), after the
// held resources are released.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hinomi-testload: "+format+"\n", args...)
	os.Exit(1)
}

// idle is the whole life of a child: wait for SIGTERM or SIGINT, or be
// killed by SIGKILL when the parent dies.
func idle() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

func (c config) validate() error {
	switch {
	case c.watches < 0, c.files < 0, c.children < 0, c.threads < 0, c.hogMB < 0, c.exitAfter < 0, c.writeMB < 0, c.logMB < 0:
		return errors.New("-watches, -files, -children, -threads, -hog-mb, -write-mb, -log-mb and -exit-after must not be negative")
	case c.exitCode < 0 || c.exitCode > 255:
		return fmt.Errorf("-exit-code must be 0 to 255, got %d", c.exitCode)
	case c.instances < 1:
		return fmt.Errorf("-instances must be at least 1, got %d", c.instances)
	case c.watches > 0 && c.instances > c.watches:
		return fmt.Errorf("-instances %d is more than -watches %d: every instance must hold a watch", c.instances, c.watches)
	}
	return nil
}

// state is everything the program holds, so that it can be released.
type state struct {
	tmpDir   string // removed on release when non-empty
	inotify  []int
	files    []*os.File
	children []*exec.Cmd
	forked   []int         // bare children of -fork-until-full
	threads  chan struct{} // closed on release
}

func run(cfg config, stdin io.Reader, stdout io.Writer) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	// Watch for signals from the start, so that a SIGTERM during setup still
	// leads to a clean release.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)

	st := &state{threads: make(chan struct{})}
	defer func() {
		if rerr := st.release(); rerr != nil && err == nil {
			err = rerr
		}
	}()

	if err := raiseNoFile(cfg.files + cfg.instances + fdHeadroom); err != nil {
		return err
	}
	if cfg.watches > 0 {
		if err := st.addWatches(cfg); err != nil {
			return err
		}
	}
	if err := st.openFiles(cfg.files); err != nil {
		return err
	}
	st.startThreads(cfg.threads)
	if cfg.stat != "" {
		st.statFrom(cfg.stat)
	}
	if err := st.startChildren(cfg.children); err != nil {
		return err
	}
	forked := ""
	if cfg.forkFull {
		if err := st.forkUntilFull(); err != nil {
			return err
		}
		forked = fmt.Sprintf(" forked=%d", len(st.forked))
	}

	if cfg.nofilePct > 0 {
		if err := fillNoFile(cfg.nofilePct); err != nil {
			return err
		}
	}

	if cfg.writeMB > 0 {
		if err := writeFile(cfg.writeTo, cfg.writeMB); err != nil {
			return err
		}
	}

	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "ready pid=%d watches=%d instances=%d files=%d children=%d%s\n",
		os.Getpid(), cfg.watches, cfg.instances, cfg.files, cfg.children, forked)
	for _, l := range cfg.logLines {
		fmt.Fprintln(w, l)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the ready line: %w", err)
	}
	if cfg.hogMB > 0 {
		if err := st.startHog(cfg.hogMB); err != nil {
			return err
		}
	}
	if cfg.logMB > 0 {
		line := []byte(strings.Repeat("hinomi-testload log line ", 40) + "\n") // 1001 bytes
		for n := 0; n < cfg.logMB<<20; n += len(line) {
			if _, err := w.Write(line); err != nil {
				return fmt.Errorf("writing log lines: %w", err)
			}
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("writing log lines: %w", err)
		}
	}

	eof := make(chan struct{})
	if cfg.stdin {
		go func() {
			// Any read error counts as end of input.
			_, _ = io.Copy(io.Discard, stdin)
			close(eof)
		}()
	}
	var exit <-chan time.Time
	if cfg.exitAfter > 0 {
		exit = time.After(cfg.exitAfter)
	}
	select {
	case <-eof:
	case <-sig:
	case <-exit:
		return exitStatus(cfg.exitCode)
	}
	return nil
}

// writeFile writes mb MiB of random bytes (which no filesystem compresses
// away) to path, synced.
func writeFile(path string, mb int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for range mb {
		if _, err := rand.Read(buf); err != nil {
			f.Close()
			return err
		}
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fillNoFile sets RLIMIT_NOFILE (soft and hard) so that the descriptors
// open now are pct percent of it. Later opens fail, which the program does
// not need.
func fillNoFile(pct int) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	// ReadDir's own descriptor is counted in ents and closed now.
	n := uint64((len(ents) - 1) * 100 / pct)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", n, err)
	}
	return nil
}

// raiseNoFile makes sure the RLIMIT_NOFILE soft limit is at least need,
// raising it to the hard limit when it is lower.
func raiseNoFile(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if lim.Cur >= uint64(need) {
		return nil
	}
	if lim.Max < uint64(need) {
		return fmt.Errorf("need %d file descriptors but the RLIMIT_NOFILE hard limit is %d", need, lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the RLIMIT_NOFILE soft limit to %d: %w", lim.Max, err)
	}
	return nil
}

func (st *state) addWatches(cfg config) error {
	root := cfg.dir
	if root == "" {
		root = os.TempDir()
	}
	// A FROM scratch image has no /tmp: make it (and any missing -dir).
	if err := os.MkdirAll(root, 0o1777); err != nil {
		return fmt.Errorf("creating %s: %w", root, err)
	}
	dir, err := os.MkdirTemp(root, "hinomi-testload-")
	if err != nil {
		return fmt.Errorf("creating a temporary directory: %w", err)
	}
	st.tmpDir = dir

	for i := 0; i < cfg.instances; i++ {
		fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
		if err != nil {
			if errors.Is(err, syscall.EMFILE) {
				return fmt.Errorf("inotify_init1 (instance %d of %d): %w (see fs.inotify.max_user_instances)", i+1, cfg.instances, err)
			}
			return fmt.Errorf("inotify_init1 (instance %d of %d): %w", i+1, cfg.instances, err)
		}
		st.inotify = append(st.inotify, fd)
	}
	for i := 0; i < cfg.watches; i++ {
		path := filepath.Join(dir, fmt.Sprintf("w%07d", i))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("creating watched file: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("creating watched file: %w", err)
		}
		fd := st.inotify[i%len(st.inotify)]
		if _, err := syscall.InotifyAddWatch(fd, path, watchMask); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("inotify_add_watch %s (watch %d of %d): %w (see fs.inotify.max_user_watches)", path, i+1, cfg.watches, err)
			}
			return fmt.Errorf("inotify_add_watch %s (watch %d of %d): %w", path, i+1, cfg.watches, err)
		}
	}
	return nil
}

func (st *state) openFiles(n int) error {
	for i := 0; i < n; i++ {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return fmt.Errorf("opening file descriptor %d of %d: %w", i+1, n, err)
		}
		st.files = append(st.files, f)
	}
	return nil
}

func (st *state) startThreads(n int) {
	for i := 0; i < n; i++ {
		go func() {
			// The goroutine never unlocks, so its thread is not reused and
			// ends with it.
			runtime.LockOSThread()
			<-st.threads
		}()
	}
}

// statFrom stats path on a thread of its own: the main goroutine is locked
// to the main thread, so this runs on another one, and it holds that
// thread until release.
func (st *state) statFrom(path string) {
	go func() {
		runtime.LockOSThread()
		var s syscall.Stat_t
		_ = syscall.Stat(path, &s)
		<-st.threads
	}()
}

func (st *state) startChildren(n int) error {
	if n == 0 {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own executable for -children: %w", err)
	}
	for i := 0; i < n; i++ {
		cmd := exec.Command(exe, "-idle")
		// A small runtime per child, so thousands stay cheap.
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=off")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				return fmt.Errorf("starting child %d of %d: %w (process or thread limit reached)", i+1, n, err)
			}
			return fmt.Errorf("starting child %d of %d: %w", i+1, n, err)
		}
		st.children = append(st.children, cmd)
	}
	return nil
}

// release frees everything held: children are killed and reaped, inotify
// instances and files closed, threads let go, and the temporary directory
// removed. It returns the first error that matters.
func (st *state) release() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, c := range st.children {
		_ = c.Process.Kill()
	}
	for _, c := range st.children {
		_ = c.Wait() // killed on purpose: the status is not an error
	}
	st.children = nil
	for _, pid := range st.forked {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_, _ = syscall.Wait4(pid, nil, 0, nil)
	}
	st.forked = nil
	for _, fd := range st.inotify {
		keep(syscall.Close(fd))
	}
	st.inotify = nil
	for _, f := range st.files {
		keep(f.Close())
	}
	st.files = nil
	close(st.threads)
	if st.tmpDir != "" {
		if err := os.RemoveAll(st.tmpDir); err != nil {
			keep(fmt.Errorf("removing temporary directory: %w", err))
		}
		st.tmpDir = ""
	}
	return first
}
