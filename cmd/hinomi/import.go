package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hinomi/hinomi/internal/importer"
)

// maxImport bounds what an import reads: a configuration, not a dump.
const maxImport = 32 << 20

// runImport is `hinomi import gatus|uptime-kuma FILE...`: write a tower
// configuration from another monitor's, and say what did not map.
func runImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("import", "gatus CONFIG...|uptime-kuma BACKUP.json [flags]",
		"Write a tower configuration (docs/tower.md) from a Gatus config.yaml (several files of a\n"+
			"configuration directory may be given) or an Uptime Kuma JSON backup: every endpoint or monitor,\n"+
			"condition and notification that maps, and, in the file's header and on standard error, what\n"+
			"did not and why. Check the result with: hinomi tower --config FILE --check", stdout, stderr)
	out := fs.String("o", "", "write to `FILE` instead of standard output (refuses to overwrite)")
	listen := fs.String("listen", "127.0.0.1:8080", "the tower's listen address in the written configuration")
	dataDir := fs.String("data-dir", "/var/lib/hinomi/tower", "the tower's data directory in the written configuration")
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if err := fs.parse(args); err != nil {
			return err // -h, or a flag error told once with the usage
		}
		args = fs.Args()
	}
	if len(args) == 0 {
		return fmt.Errorf("import: want \"hinomi import gatus CONFIG...\" or \"hinomi import uptime-kuma BACKUP.json\"")
	}
	kind := args[0]
	files, err := fs.parseInterspersed(args[1:])
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("import %s: name the file to import", kind)
	}
	var data [][]byte
	for _, f := range files {
		b, err := readBounded(f)
		if err != nil {
			return fmt.Errorf("import %s: %w", kind, err)
		}
		data = append(data, b)
	}
	var r *importer.Result
	switch kind {
	case "gatus":
		r, err = importer.Gatus(data...)
	case "uptime-kuma", "kuma":
		if len(files) > 1 {
			return fmt.Errorf("import uptime-kuma: one backup file at a time")
		}
		r, err = importer.Kuma(data[0])
	default:
		return fmt.Errorf("import: unknown source %q (want gatus or uptime-kuma)", kind)
	}
	if err != nil {
		return fmt.Errorf("import %s: %s: %w", kind, files[0], err)
	}
	r.Config.Listen, r.Config.DataDir = *listen, *dataDir
	text, err := r.YAML(fmt.Sprintf("%s (%s)", files[0], kind))
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(text)
	} else {
		err = writeNew(*out, text)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "imported %d probes, %d channels, %d routes", len(r.Config.Probes), len(r.Config.Channels), len(r.Config.Routes))
	if len(r.Skipped) == 0 {
		fmt.Fprintln(stderr, "; everything mapped")
		return nil
	}
	fmt.Fprintf(stderr, "; not imported (%d):\n", len(r.Skipped))
	for _, s := range r.Skipped {
		fmt.Fprintf(stderr, "  - %s: %s\n", s.What, s.Why)
	}
	return nil
}

func readBounded(path string) ([]byte, error) {
	var rd io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rd = f
	}
	b, err := io.ReadAll(io.LimitReader(rd, maxImport+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxImport {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a configuration", path, maxImport>>20)
	}
	return b, nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: not overwriting it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
