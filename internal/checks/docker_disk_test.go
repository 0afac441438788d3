package checks

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
	"github.com/hinomi/hinomi/internal/runbook"
	"github.com/hinomi/hinomi/internal/testload"
)

// diskName names this helper's Docker objects.
func diskName(what string) string { return fmt.Sprintf("dockerdisk-%s-%d", what, os.Getpid()) }

func inspectDisk(t *testing.T, name string) (upper, logPath string) {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Container.GraphDriver != nil {
		upper = res.Container.GraphDriver.Data["UpperDir"]
	}
	return upper, res.Container.LogPath
}

// consumerNamed returns the consumer whose name starts with prefix.
func consumerNamed(cs []finding.Consumer, prefix string) (finding.Consumer, bool) {
	for _, c := range cs {
		if strings.HasPrefix(c.Name, prefix) {
			return c, true
		}
	}
	return finding.Consumer{}, false
}

// A container that writes 200 MB into its writable layer is named, with
// that size, as the top consumer of its finding; when the filesystem
// holding Docker's data fills, the disk finding names it by name (not its
// overlay2 hash); and both replay from a snapshot.
func TestDockerDiskLayerNamed(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := diskName("layer")
	testload.RunContainer(t, image, name, "-write-mb", "200")
	upper, _ := inspectDisk(t, name)

	env, rec, dir := recordingEnv(t)
	res, err := checkDockerDisk(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "writable layer of container "+name)
	if f.Mode != "FM-C2" || f.Severity != finding.Low {
		t.Errorf("mode %s severity %s; want FM-C2 low", f.Mode, f.Severity)
	}
	if len(f.Evidence.Figures) == 0 || f.Evidence.Figures[0].Value < 200<<20 || f.Evidence.Figures[0].Value > 210<<20 {
		t.Errorf("figures %+v; want the layer's 200 MiB first", f.Evidence.Figures)
	}
	c := f.Evidence.Consumers
	if len(c) == 0 || !strings.HasPrefix(c[0].Name, name+" (writable layer "+upper+")") || c[0].Value < 200<<20 {
		t.Errorf("consumers %+v; want %s's layer %s first with 200 MiB", c, name, upper)
	}
	if v := f.Evidence.Vars; v["container"] != name || v["dir"] != upper || v["owner"] != "docker" || v["prune_bytes"] == "" {
		t.Errorf("vars %v; want container %s, dir %s", v, name, upper)
	}
	if !strings.Contains(f.Summary, name) || !strings.Contains(f.Summary, "200.0 MiB") && !strings.Contains(f.Summary, "200 MiB") {
		t.Errorf("summary does not name the container and its size: %s", f.Summary)
	}
	readyStep(t, f, "docker diff "+name, "truncate", "journalctl")

	// The filesystem holding Docker's data is full: the disk finding's
	// overlay2/<id> directory and its top Docker consumer carry names.
	ms, err := mounts(env)
	if err != nil {
		t.Fatal(err)
	}
	mp := mountOf(env, upper)
	var m = ms[0]
	for _, x := range ms {
		if x.MountPoint == mp {
			m = x
		}
	}
	env.HogDirs = []string{filepath.Dir(filepath.Dir(upper))} // …/overlay2
	full := finding.Figure{Name: "disk " + mp, Value: 96, Limit: 100, Unit: "bytes"}
	df, ok := diskFinding(t.Context(), env, m, full, "space", nil)
	if !ok {
		t.Fatal("no disk finding at 96%")
	}
	if df.Severity != finding.High {
		t.Errorf("severity %s; want high at 96%%", df.Severity)
	}
	if _, ok := consumerNamed(df.Evidence.Consumers, filepath.Dir(upper)+" (container "+name+")"); !ok {
		t.Errorf("no consumer naming %s's overlay2 directory by name: %+v", name, df.Evidence.Consumers)
	}
	top, ok := consumerNamed(df.Evidence.Consumers, name+" (writable layer")
	if !ok || top.Kind != "container" || top.Value < 200<<20 {
		t.Errorf("consumers %+v; want %s's writable layer by name with 200 MiB", df.Evidence.Consumers, name)
	}
	if df.Evidence.Vars["container"] != name || df.Evidence.Vars["dir"] != upper {
		t.Errorf("vars %v; want container %s and dir %s", df.Evidence.Vars, name, upper)
	}
	if !strings.Contains(df.Summary, "The biggest Docker consumer is container "+name) {
		t.Errorf("summary does not name the top container: %s", df.Summary)
	}

	if err := rec.Close(host.Meta{Host: "test", Taken: env.Now}); err != nil {
		t.Fatal(err)
	}
	assertReplays(t, dir, env.Now, checkDockerDisk, f)
}

// recordingEnv is liveDockerEnv recording what it reads into a snapshot
// in dir; rec.Close ends it.
func recordingEnv(t *testing.T) (env *Env, rec *host.Recorder, dir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "snap")
	rec, err := host.NewRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	env = liveDockerEnv(t)
	env.Src.Record(rec)
	return env, rec, dir
}

// assertReplays runs check on the snapshot in dir and fails unless it
// finds f again, with the same summary.
func assertReplays(t *testing.T, dir string, now time.Time, check func(context.Context, *Env) (Result, error), f finding.Finding) {
	t.Helper()
	src, err := host.FromDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	replayed, err := check(t.Context(), &Env{Src: src, Now: now, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if g := findingFor(t, replayed, f.Subject); g.Summary != f.Summary {
		t.Errorf("replayed summary\n%s\nwant\n%s", g.Summary, f.Summary)
	}
}

// A container that logs heavily without max-size is named for its log
// file, with its path and size.
func TestDockerDiskLogNamed(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := diskName("log")
	testload.RunContainer(t, image, name, "-log-mb", "110")
	_, logPath := inspectDisk(t, name)
	deadline := time.Now().Add(time.Minute)
	for {
		fi, err := os.Stat(logPath)
		if err == nil && fi.Size() >= 110<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s did not reach 110 MiB within a minute (%v)", logPath, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the file's size, with a deadline
	}
	res, err := checkDockerDisk(t.Context(), liveDockerEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	f := findingFor(t, res, "log of container "+name)
	if f.Mode != "FM-C2" || f.Severity != finding.Low {
		t.Errorf("mode %s severity %s; want FM-C2 low", f.Mode, f.Severity)
	}
	if v := f.Evidence.Vars; v["container"] != name || v["dir"] != logPath || v["log_path"] != logPath {
		t.Errorf("vars %v; want container %s, dir and log_path %s", v, name, logPath)
	}
	c, ok := consumerNamed(f.Evidence.Consumers, name+" (log "+logPath+")")
	if !ok || c.Value < 110<<20 {
		t.Errorf("consumers %+v; want %s's log with at least 110 MiB", f.Evidence.Consumers, name)
	}
	if !strings.Contains(f.Summary, "not rotated") || !strings.Contains(f.Summary, name) {
		t.Errorf("summary: %s", f.Summary)
	}
	readyStep(t, f, "truncate -s 0 "+logPath, "docker diff", "journalctl")
}

// readyStep fails unless the finding's runbook has a ready recovery step
// holding want, and when a step holds one of nots.
func readyStep(t *testing.T, f finding.Finding, want string, nots ...string) {
	t.Helper()
	book, err := runbook.Load("")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := book.Get(f.Mode).Steps("Recover", f.Evidence.Vars)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	found := false
	for _, s := range steps {
		for _, l := range s.Lines {
			found = found || s.Ready && strings.Contains(l, want)
			for _, n := range nots {
				if strings.Contains(l, n) {
					t.Errorf("a step %q does not fit this finding", l)
				}
			}
			all = append(all, fmt.Sprintf("%v %s", s.Ready, l))
		}
	}
	if !found {
		t.Errorf("no ready step with %q among:\n%s", want, strings.Join(all, "\n"))
	}
}

// A volume is named with the container that uses it and its size, a
// container's overlay2 directory with the Swarm service its label names,
// and a volume nobody uses counts in what a prune would free.
func TestDockerDiskVolumeUsers(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name, vol, spare := diskName("voluser"), diskName("vol"), diskName("spare")
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, v := range []string{vol, spare} {
		if _, err := cli.VolumeCreate(t.Context(), client.VolumeCreateOptions{Name: v}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := cli.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true}); err != nil {
				t.Errorf("removing volume %s: %v", v, err)
			}
		})
	}
	// Registered after the volumes' cleanups, so the container goes first.
	// The label a Swarm task carries names its service.
	testload.StartContainer(t, image, name, testload.ContainerSpec{
		Labels: map[string]string{"com.docker.swarm.service.name": "dockerdisk-svc"},
		Binds:  []string{vol + ":/data"},
		Args:   []string{"-stdin=false", "-write-mb", "20", "-write-to", "/data/blob"},
	})
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := testload.ContainerLogs(t, name)
		if strings.Contains(out, "ready ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed no ready line within a minute", name)
		}
		time.Sleep(100 * time.Millisecond) // polling the logs, with a deadline
	}

	env := liveDockerEnv(t)
	dd, err := dockerDisk(t.Context(), env)
	if err != nil {
		t.Fatal(err)
	}
	var got, unused *volumeDisk
	for i := range dd.Volumes {
		switch dd.Volumes[i].Name {
		case vol:
			got = &dd.Volumes[i]
		case spare:
			unused = &dd.Volumes[i]
		}
	}
	if got == nil || unused == nil {
		t.Fatalf("volumes %+v lack %s or %s", dd.Volumes, vol, spare)
	}
	if len(got.Users) != 1 || got.Users[0] != name || got.Bytes < 20<<20 || !got.Done {
		t.Errorf("volume %+v; want used by %s with 20 MiB", got, name)
	}
	if len(unused.Users) != 0 {
		t.Errorf("volume %+v; want no user", unused)
	}
	mp := mountOf(env, got.Dir)
	c, ok := consumerNamed(dd.diskConsumers(env, mp, 1000), vol+" (used by "+name)
	if !ok || c.Kind != "volume" || c.Value < 20<<20 {
		t.Errorf("no consumer naming volume %s with its user %s", vol, name)
	}
	if n := dd.nameDir(filepath.Dir(got.Dir)); n != filepath.Dir(got.Dir)+" (volume "+vol+", used by "+name+")" {
		t.Errorf("nameDir = %q", n)
	}
	upper, _ := inspectDisk(t, name)
	if n := dd.nameDir(filepath.Dir(upper)); n != filepath.Dir(upper)+" (container "+name+" (service dockerdisk-svc))" {
		t.Errorf("nameDir of the task's layer = %q; want its container and service", n)
	}
	r := dd.reclaim()
	if r.volumesN < 1 || !strings.Contains(r.sentence(), "volumes no container uses") {
		t.Errorf("reclaim %+v: the unused volume is not counted: %s", r, r.sentence())
	}
}

// An engine reached over TCP keeps its layers on another machine: doctor
// says so instead of measuring this host's paths of the same name.
func TestDockerDiskRemoteEngineNotMeasured(t *testing.T) {
	testload.RequireDocker(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// A TCP front for the real daemon's socket.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				d, err := net.Dial("unix", testload.DockerSocket)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { _, _ = io.Copy(d, c) }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	t.Setenv("DOCKER_HOST", "tcp://"+ln.Addr().String())
	res, err := checkDockerDisk(t.Context(), liveDockerEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 {
		t.Errorf("findings about a remote engine's containers measured here: %+v", res.Findings)
	}
	if len(res.Blind) != 1 || !strings.Contains(res.Blind[0], "is not on this host") {
		t.Errorf("blind %q; want the engine named as remote", res.Blind)
	}
}

// A volume whose data sits on a server that stopped answering (an NFS
// volume; here a FUSE mount that hangs) is not walked: the measurement
// finishes at once and says why the volume has no size.
func TestDockerDiskHungVolumeNotWalked(t *testing.T) {
	testload.RequireDocker(t)
	vol := diskName("hungvol")
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	created, err := cli.VolumeCreate(t.Context(), client.VolumeCreateOptions{Name: vol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.VolumeRemove(ctx, vol, client.VolumeRemoveOptions{Force: true}); err != nil {
			t.Errorf("removing volume %s: %v", vol, err)
		}
	})
	// Registered after the volume's cleanup, so it is unmounted first.
	// Below the volume's data, not on it: dockerd itself stats the data
	// directory when it lists volumes, and would hang on it.
	m := testload.MountHungOn(t, filepath.Join(created.Volume.Mountpoint, "nfs"), "dockerdisk:/export")
	m.Hang()

	env := liveDockerEnv(t)
	var dd *dockerDiskState
	done := make(chan struct{})
	go func() {
		defer close(done)
		dd, err = dockerDisk(t.Context(), env)
	}()
	select {
	case <-done:
	case <-time.After(4 * dockerCallTimeout):
		t.Fatal("the measurement hangs on the hung volume") // the cleanup releases it
	}
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, u := range dd.Unmeasured {
		found = found || strings.Contains(u, "volume "+vol+" is on fuse") && strings.Contains(u, "not walked")
	}
	if !found {
		t.Errorf("unmeasured %q; want volume %s named as on a FUSE mount, not walked", dd.Unmeasured, vol)
	}
}

// Over the agent's cycles, the container whose writable layer grows is
// named as the fastest grower on its filesystem, before the filesystem
// is anywhere near full.
func TestDockerDiskFastestGrowingContainer(t *testing.T) {
	image := testload.ScratchImage(t, testload.DefaultImage)
	name := diskName("grower")
	testload.RunContainer(t, image, name)
	upper, _ := inspectDisk(t, name)
	src := filepath.Join(t.TempDir(), "blob")
	writeMiB(t, src, 16)

	trend := NewDiskTrend()
	t0 := time.Now()
	var top finding.Consumer
	var rate float64
	var ok bool
	mount := mountOf(liveDockerEnv(t), upper)
	for i := range 3 {
		if i > 0 {
			// docker cp writes into the container's writable layer.
			if out, err := exec.Command("docker", "cp", src, fmt.Sprintf("%s:/blob%d", name, i)).CombinedOutput(); err != nil {
				t.Fatalf("docker cp: %v: %s", err, out)
			}
		}
		env := liveDockerEnv(t)
		env.Now = t0.Add(time.Duration(i) * 15 * time.Second)
		dd, err := dockerDisk(t.Context(), env)
		if err != nil {
			t.Fatal(err)
		}
		top, rate, _, ok = trend.grow(mount, env.Now, dd.diskConsumers(env, mount, trendConsumers))
	}
	var mine *grower
	for n, g := range trend.fs[mount].consumers {
		if strings.HasPrefix(n, name+" (writable layer "+upper) {
			mine = g
		}
	}
	if mine == nil || mine.last-mine.first < 32<<20 {
		t.Fatalf("%s's writable layer did not grow by 32 MiB in the trend: %+v", name, mine)
	}
	// Other engineers' containers may grow faster on this shared host:
	// then the one named must have.
	if !ok || top.Name != name+" (writable layer "+upper+")" && rate < (mine.last-mine.first)/30 {
		t.Errorf("fastest grower %+v at %.0f B/s (%v); want %s's writable layer", top, rate, ok, name)
	}
}
