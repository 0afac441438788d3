package doctor

import (
	"testing"
	"time"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/testload"
)

// A Docker socket that accepts and never answers: doctor finishes within
// its deadline and reports FM-E7.
func TestDoctorDockerSocketHangs(t *testing.T) {
	sock := testload.SilentSocket(t)
	t.Setenv("DOCKER_HOST", "unix://"+sock)

	start := time.Now()
	d := diagnose(t, Options{})
	took := time.Since(start)
	// The API's 3 s deadline, plus a whole diagnosis on a loaded machine.
	if took > 15*time.Second {
		t.Errorf("doctor took %s with a hung Docker socket; want under 15s", took)
	}
	f := findingByKey(t, d, "FM-E7/docker API")
	if f.Severity != finding.High || f.Evidence.Vars["endpoint"] != "unix://"+sock {
		t.Errorf("severity %s vars %v; want high and the socket named", f.Severity, f.Evidence.Vars)
	}
}
