package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// flags is one command's flag set. "-h" prints its usage on standard
// output and exits 0; a flag error is printed once, with the usage, on
// standard error and exits 2.
type flags struct {
	*flag.FlagSet
	stdout, stderr io.Writer
	out            bytes.Buffer // what the flag package prints, until we know where it goes
}

// newFlags makes the flag set of "hinomi <name>"; synopsis follows the
// name in the usage line, about says what the command does.
func newFlags(name, synopsis, about string, stdout, stderr io.Writer) *flags {
	f := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), stdout: stdout, stderr: stderr}
	f.SetOutput(&f.out)
	f.Usage = func() {
		w := f.Output()
		fmt.Fprintf(w, "Usage: hinomi %s %s\n\n%s\n", name, synopsis, about)
		n := 0
		f.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			f.PrintDefaults()
		}
	}
	return f
}

// usageError is a command line that could not be parsed; its message and
// the usage are printed already.
type usageError struct{ error }

func (f *flags) parse(args []string) error {
	f.out.Reset()
	err := f.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		_, _ = f.out.WriteTo(f.stdout)
		return err
	}
	_, _ = f.out.WriteTo(f.stderr)
	return usageError{err}
}

// parseInterspersed lets flags follow positional arguments
// ("hinomi runbook FM-B2 -set pid=1") and returns the positional ones.
func (f *flags) parseInterspersed(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.parse(args); err != nil {
			return nil, err
		}
		if f.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, f.Arg(0))
		args = f.Args()[1:]
	}
}

// isHelp reports whether a command's only argument asks for help.
func isHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")
}

// envString is a string flag whose default comes from an environment
// variable. Help names the variable, never its value: it may be a secret
// (a token, a URL with a password in it).
type envString struct {
	v, env, def string
	set         bool
}

// envFlag defines an envString flag; usage should say which variable is
// the default (help shows no value).
func envFlag(fs *flag.FlagSet, name, env, def, usage string) *envString {
	e := &envString{env: env, def: def}
	fs.Var(e, name, usage)
	return e
}

func (e *envString) String() string {
	if e == nil {
		return ""
	}
	return e.v
}

func (e *envString) Set(s string) error { e.v, e.set = s, true; return nil }

// Get is the flag's value: given on the command line, else the
// environment's, else the built-in default.
func (e *envString) Get() string {
	if e.set {
		return e.v
	}
	if v := os.Getenv(e.env); v != "" {
		return v
	}
	return e.def
}

// version overrides the version from the build information when set at
// build time with -ldflags "-X main.version=…".
var version string

// buildVersion is the module's version and the commit it was built from,
// as the Go toolchain recorded them in the binary.
type buildVersion struct {
	Module   string // v1.2.3, a pseudo-version, or (devel)
	Commit   string
	Time     string
	Modified bool
	Go       string
}

func readBuildVersion() buildVersion {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return buildVersion{Module: "(devel)"}
	}
	return parseBuildVersion(bi)
}

func parseBuildVersion(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Module: bi.Main.Version, Go: bi.GoVersion}
	if v.Module == "" {
		v.Module = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// shortVersion names this build in one word, for the tower's host list
// and snapshots.
func shortVersion() string {
	if version != "" {
		return version
	}
	return readBuildVersion().short()
}

// longVersion is what "hinomi version" prints.
func longVersion() string {
	if version != "" {
		return "hinomi " + version
	}
	return readBuildVersion().long()
}

// short is the module version, or the commit when there is none.
func (v buildVersion) short() string {
	if v.Module != "(devel)" || v.Commit == "" {
		return v.Module
	}
	s := "devel-" + shortCommit(v.Commit)
	if v.Modified {
		s += "+dirty"
	}
	return s
}

func (v buildVersion) long() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hinomi %s", v.Module)
	if v.Commit == "" {
		b.WriteString(" (no commit recorded: built outside a git checkout, or with -buildvcs=false)")
	} else {
		fmt.Fprintf(&b, " (commit %s", shortCommit(v.Commit))
		if v.Time != "" {
			fmt.Fprintf(&b, " of %s", v.Time)
		}
		if v.Modified {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteString(")")
	}
	if v.Go != "" {
		fmt.Fprintf(&b, ", %s", v.Go)
	}
	return b.String()
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
