package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestImportGatusAndRun is a Gatus user's switch: their config.yaml
// (Gatus's own syntax: pat(), len(), bare milliseconds) imported, the
// written configuration checked and run by a tower with no agents, and
// the status page telling the same truth Gatus would.
func TestImportGatusAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			fmt.Fprint(w, `{"status":"UP","items":[1,2]}`)
		case "/broken":
			fmt.Fprint(w, `{"status":"DOWN","items":[]}`)
		}
	}))
	defer app.Close()
	dir := t.TempDir()
	gatus := fmt.Sprintf(`endpoints:
  - name: api
    group: core
    url: "%s/health"
    interval: 1s
    conditions:
      - "[STATUS] == any(200, 204)"
      - "[BODY].status == pat(U*)"
      - "len([BODY].items) > 0"
      - "[RESPONSE_TIME] < 5000"
  - name: worker
    group: core
    url: "%s/broken"
    interval: 1s
    conditions:
      - "[STATUS] == 200"
      - "[BODY].status == UP"
  - name: legacy-ssh
    url: "ssh://127.0.0.1:22"
    ssh: {username: root, password: x}
    conditions: ["[CONNECTED] == true"]
`, app.URL, app.URL)
	src := filepath.Join(dir, "gatus.yaml")
	if err := os.WriteFile(src, []byte(gatus), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cfgPath := filepath.Join(dir, "tower.yaml")
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"import", "gatus", src, "-o", cfgPath, "--listen", addr, "--data-dir", filepath.Join(dir, "tower")}, &out, &errb)
	// The ssh endpoint becomes a banner probe; its login is listed as not imported.
	if code != 0 || !strings.Contains(errb.String(), "imported 3 probes") ||
		!strings.Contains(errb.String(), `ssh login and command of endpoint "legacy-ssh": hinomi's ssh probe reads the server's banner`) {
		t.Fatalf("import: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code = run(t.Context(), []string{"import", "gatus", src, "-o", cfgPath}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "not overwriting") {
		t.Errorf("a second import over the file: exit %d %s", code, errb.String())
	}
	out.Reset()
	if code = run(t.Context(), []string{"tower", "--config", cfgPath, "--check"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "0 agents, 3 probes") {
		t.Fatalf("tower --check of the import: exit %d\n%s%s", code, out.String(), errb.String())
	}
	tower := start(t, "tower", "--config", cfgPath)
	tower.waitLine(t, regexp.MustCompile(`tower listening`), 20*time.Second)
	waitStatusPage(t, addr, map[string]string{"api": "up", "worker": "down"}, 20*time.Second)
}
