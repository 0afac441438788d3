package checks

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/hinomi/hinomi/internal/finding"
	"github.com/hinomi/hinomi/internal/host"
)

// Where a Docker host's disk goes (FM-C2), measured on disk: each
// container's writable layer (overlay2's UpperDir) and log file (LogPath),
// each volume with the containers that use it, and what `docker system
// prune` would free. Paths come from the inspections docker.go already
// made; sizes are read with lstat on the host, never by asking dockerd
// (`docker ps --size` and /system/df make it walk every layer, which takes
// minutes on a big host). The measurement is recorded as the probe
// "docker-disk", so doctor --from replays it.

const (
	// dockerDiskBudget bounds the walk of all layers and volumes of one
	// run; what it did not reach is reported as not measured.
	dockerDiskBudget   = 1500 * time.Millisecond
	dockerDiskMaxFiles = 1_000_000
	// dockerDiskNote is the size from which a container's writable layer,
	// or its log file without rotation, is worth a finding on its own:
	// well-behaved containers keep data in volumes and rotate their logs.
	dockerDiskNote = 100 << 20
	// dockerDiskMedium raises such a finding to medium.
	dockerDiskMedium = 10 << 30
)

// dockerDiskState is the measurement, as recorded in a snapshot.
type dockerDiskState struct {
	// Root is Docker's data root, read from the layer and log paths
	// (/var/lib/docker).
	Root       string          `json:"root,omitempty"`
	Containers []containerDisk `json:"containers,omitempty"`
	Volumes    []volumeDisk    `json:"volumes,omitempty"`
	// Dangling are images without a tag that no container uses: what
	// docker image prune (and system prune) removes.
	Dangling []danglingImage `json:"dangling,omitempty"`
	// BuildCache is the size of <root>/buildkit, when it exists.
	BuildCache *float64 `json:"build_cache,omitempty"`
	// Unmeasured says, in plain words, what was not measured and why.
	Unmeasured []string `json:"unmeasured,omitempty"`
	Budget     float64  `json:"budget_seconds"`
}

type containerDisk struct {
	ID      string `json:"id"`
	Label   string `json:"label"` // container name, with its service
	Name    string `json:"name"`
	Service string `json:"service,omitempty"`
	Running bool   `json:"running"`
	Status  string `json:"status"`
	// LayerDir is the writable layer (…/overlay2/<id>/diff); Layer its
	// allocated bytes, LayerDone whether the walk finished.
	LayerDir  string  `json:"layer_dir,omitempty"`
	Layer     float64 `json:"layer"`
	LayerDone bool    `json:"layer_done"`
	LogPath   string  `json:"log_path,omitempty"`
	Log       float64 `json:"log"`
	// LogMaxSize is the log-opts max-size ("" when the log is not
	// rotated by size).
	LogMaxSize string `json:"log_max_size,omitempty"`
	LogDriver  string `json:"log_driver,omitempty"`
}

type volumeDisk struct {
	Name  string   `json:"name"`
	Dir   string   `json:"dir"`
	Bytes float64  `json:"bytes"`
	Done  bool     `json:"done"`
	Users []string `json:"users,omitempty"` // containers using it, running or not
}

type danglingImage struct {
	ID      string    `json:"id"`
	Size    float64   `json:"size"`
	Created time.Time `json:"created"`
}

// dockerDisk returns the measurement, made (or replayed) once per run.
func dockerDisk(ctx context.Context, env *Env) (*dockerDiskState, error) {
	env.dockerDiskOnce.Do(func() {
		st, err := docker(ctx, env)
		if err != nil {
			env.dockerDiskErr = err
			return
		}
		if st.Absent || st.Hung != "" || st.Error != "" {
			env.dockerDiskErr = ErrNotApplicable // docker-api and docker-restarts say why
			return
		}
		var dd dockerDiskState
		err = env.Src.Probe("docker-disk", &dd, func() error {
			dd = measureDockerDisk(ctx, env, st)
			return nil
		})
		switch {
		case host.Missing(err):
			env.dockerDiskErr = ErrNotApplicable
		case err != nil:
			env.dockerDiskErr = err
		default:
			env.dockerDiskSt = &dd
		}
	})
	return env.dockerDiskSt, env.dockerDiskErr
}

// measureDockerDisk sizes what the containers of st keep on the host: the
// log files first (one lstat each), then the writable layers, volumes and
// build cache under one walking budget.
func measureDockerDisk(ctx context.Context, env *Env, st *dockerState) dockerDiskState {
	src := env.Src
	dd := dockerDiskState{Budget: dockerDiskBudget.Seconds()}
	if st.Endpoint != "" && !strings.HasPrefix(st.Endpoint, "unix://") {
		// The engine's paths are on another machine.
		dd.Unmeasured = append(dd.Unmeasured, "the engine at "+st.Endpoint+" is not on this host: its layers, logs and volumes are measured by running hinomi there")
		return dd
	}
	users := map[string][]string{}
	for i := range st.Containers {
		c := &st.Containers[i]
		cd := containerDisk{ID: c.ID, Name: c.Name, Label: c.diskLabel(), Service: c.Service, Running: c.Running, Status: c.Status,
			LayerDir: c.UpperDir, LogPath: c.LogPath, LogDriver: c.LogDriver, LogMaxSize: c.LogOpts["max-size"]}
		if dd.Root == "" {
			dd.Root = dataRoot(c)
		}
		if c.LogPath != "" {
			if fi, err := os.Lstat(src.Path(c.LogPath)); err == nil {
				cd.Log = allocated(fi)
			}
		}
		for _, v := range c.Volumes {
			users[v] = append(users[v], c.label())
		}
		dd.Containers = append(dd.Containers, cd)
	}

	w := newWalker(dockerDiskBudget, dockerDiskMaxFiles)
	// Biggest logs first does not matter for layers: walk in list order,
	// running containers first (they are what grows).
	order := make([]int, len(dd.Containers))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return dd.Containers[order[a]].Running && !dd.Containers[order[b]].Running })
	skipped := 0
	for _, i := range order {
		cd := &dd.Containers[i]
		if cd.LayerDir == "" {
			continue
		}
		if fstype := networkUnder(env, cd.LayerDir); fstype != "" {
			dd.Unmeasured = append(dd.Unmeasured, fmt.Sprintf("the writable layer of %s is on %s and is not walked", cd.Label, fstype))
			continue
		}
		dir := src.Path(cd.LayerDir)
		cd.Layer, _, cd.LayerDone = w.size(dir, filepath.Dir(dir))
		if !cd.LayerDone {
			skipped++
		}
	}
	if skipped > 0 {
		dd.Unmeasured = append(dd.Unmeasured, fmt.Sprintf("the writable layers of %d containers were not measured in full within %s", skipped, dockerDiskBudget))
	}

	// Volumes: the list is one cheap call (no sizes asked); each is
	// measured on disk.
	vols, images, err := listVolumesImages(ctx)
	if err != nil {
		dd.Unmeasured = append(dd.Unmeasured, "Docker volumes and images: "+err.Error())
	}
	for _, v := range vols {
		vd := volumeDisk{Name: v.name, Dir: v.dir, Users: users[v.name]}
		if fstype := networkUnder(env, v.dir); fstype != "" {
			// A hung server would hang the walk in the kernel.
			dd.Unmeasured = append(dd.Unmeasured, fmt.Sprintf("volume %s is on %s and is not walked", v.name, fstype))
			v.dir = ""
		}
		if v.dir != "" {
			dir := src.Path(v.dir)
			vd.Bytes, _, vd.Done = w.size(dir, filepath.Dir(dir))
			if !vd.Done {
				dd.Unmeasured = append(dd.Unmeasured, fmt.Sprintf("volume %s was not measured in full within %s", v.name, dockerDiskBudget))
			}
		}
		dd.Volumes = append(dd.Volumes, vd)
	}
	dd.Dangling = images
	if dd.Root != "" {
		bk := path.Join(dd.Root, "buildkit")
		if _, err := os.Stat(src.Path(bk)); err == nil {
			b, _, done := w.size(src.Path(bk), src.Path(dd.Root))
			dd.BuildCache = &b
			if !done {
				dd.Unmeasured = append(dd.Unmeasured, "the build cache ("+bk+") was not measured in full within "+dockerDiskBudget.String())
			}
		}
	}
	return dd
}

type volumeRef struct{ name, dir string }

// networkUnder returns the type of a network or FUSE filesystem that holds
// path or is mounted below it ("" when none): walking it could wait on
// another machine for ever.
func networkUnder(env *Env, path string) string {
	if path == "" {
		return ""
	}
	ms, err := mounts(env)
	if err != nil {
		return ""
	}
	holder, fstype := "", ""
	for _, m := range ms {
		mp := m.MountPoint
		switch {
		case strings.HasPrefix(mp, strings.TrimSuffix(path, "/")+"/") && networkFS(m.FSType):
			return m.FSType // below it
		case (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(holder):
			holder, fstype = mp, m.FSType
		}
	}
	if networkFS(fstype) {
		return fstype
	}
	return ""
}

// listVolumesImages asks the engine for its local volumes and its
// dangling images, under dockerCallTimeout each.
func listVolumesImages(ctx context.Context) ([]volumeRef, []danglingImage, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, nil, err
	}
	defer cli.Close()
	vctx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	vl, err := cli.VolumeList(vctx, client.VolumeListOptions{})
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("volume list: %w", err)
	}
	var vols []volumeRef
	for _, v := range vl.Items {
		dir := ""
		if v.Driver == "local" {
			dir = v.Mountpoint
		}
		vols = append(vols, volumeRef{v.Name, dir})
	}
	ictx, cancel := context.WithTimeout(ctx, dockerCallTimeout)
	il, err := cli.ImageList(ictx, client.ImageListOptions{Filters: client.Filters{}.Add("dangling", "true")})
	cancel()
	if err != nil {
		return vols, nil, fmt.Errorf("image list: %w", err)
	}
	var imgs []danglingImage
	for _, im := range il.Items {
		imgs = append(imgs, danglingImage{ID: im.ID, Size: float64(im.Size), Created: time.Unix(im.Created, 0).UTC()})
	}
	return vols, imgs, nil
}

// dataRoot is Docker's data root, from a container's layer or log path:
// <root>/overlay2/<id>/diff, <root>/containers/<id>/<id>-json.log.
func dataRoot(c *dockerContainer) string {
	if d, ok := strings.CutSuffix(c.UpperDir, "/diff"); ok && c.UpperDir != "" {
		return path.Dir(path.Dir(d))
	}
	if c.LogPath != "" {
		return path.Dir(path.Dir(path.Dir(c.LogPath)))
	}
	return ""
}

// diskLabel names a container for a person: a Swarm task by its service,
// a Compose container with its project and service.
func (c *dockerContainer) diskLabel() string {
	switch {
	case c.Service != "":
		return c.label() + " (service " + c.Service + ")"
	case c.Compose != "":
		return c.label() + " (compose " + c.Compose + ")"
	}
	return c.label()
}

// allocated is the space a file takes on disk.
func allocated(fi os.FileInfo) float64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return float64(st.Blocks) * 512
	}
	return float64(fi.Size())
}

// reclaim is what `docker system prune` would free, and what `docker volume
// prune` would free on top.
type reclaim struct {
	stopped, stoppedN   float64 // stopped containers' layers and logs
	dangling, danglingN float64 // dangling images (estimated)
	cache               float64 // build cache (at most)
	hasCache            bool
	volumes, volumesN   float64 // volumes no container uses
}

func (dd *dockerDiskState) reclaim() reclaim {
	var r reclaim
	for _, c := range dd.Containers {
		if !c.Running && c.Status != "restarting" && c.Status != "paused" {
			r.stopped += c.Layer + c.Log
			r.stoppedN++
		}
	}
	for _, im := range dd.Dangling {
		r.dangling += im.Size
		r.danglingN++
	}
	if dd.BuildCache != nil {
		r.cache, r.hasCache = *dd.BuildCache, true
	}
	for _, v := range dd.Volumes {
		if len(v.Users) == 0 {
			r.volumes += v.Bytes
			r.volumesN++
		}
	}
	return r
}

func (r reclaim) prune() float64 { return r.stopped + r.dangling + r.cache }

// sentence says what docker system prune would free, and how it is known.
func (r reclaim) sentence() string {
	s := fmt.Sprintf("docker system prune would free about %s: %s in %.0f stopped containers (measured), %s in %.0f dangling images (estimated from the engine's image sizes, which count layers shared with other images)",
		finding.HumanBytes(r.prune()), finding.HumanBytes(r.stopped), r.stoppedN, finding.HumanBytes(r.dangling), r.danglingN)
	if r.hasCache {
		s += fmt.Sprintf(", and at most %s of build cache (the size of the cache directory; cache in use stays)", finding.HumanBytes(r.cache))
	} else {
		s += "; the build cache was not readable on disk and is not counted"
	}
	s += "."
	if r.volumesN > 0 {
		s += fmt.Sprintf(" %.0f volumes no container uses hold %s more (docker volume prune; their data is lost).", r.volumesN, finding.HumanBytes(r.volumes))
	}
	return s
}

func (r reclaim) figures(root string) []finding.Figure {
	src := "measured under " + root
	figs := []finding.Figure{
		{Name: "docker system prune would free (stopped containers, dangling images, build cache)", Value: r.prune(), Unit: "bytes", Source: src},
		{Name: "stopped containers' writable layers and logs", Value: r.stopped, Unit: "bytes", Source: src},
		{Name: "dangling images (estimated)", Value: r.dangling, Unit: "bytes", Source: "Docker API image sizes"},
		{Name: "volumes no container uses", Value: r.volumes, Unit: "bytes", Source: src},
	}
	if r.hasCache {
		figs = append(figs, finding.Figure{Name: "build cache (at most)", Value: r.cache, Unit: "bytes", Source: root + "/buildkit"})
	}
	return figs
}

// checkDockerDisk is FM-C2 on a Docker host: a container that writes into
// its writable layer, or whose log is not rotated, and has grown big, named
// with its size, the volumes' users and what a prune would free. When a
// filesystem fills, the disk check names these containers too.
func checkDockerDisk(ctx context.Context, env *Env) (Result, error) {
	var res Result
	dd, err := dockerDisk(ctx, env)
	if err != nil {
		return res, err
	}
	for _, u := range dd.Unmeasured {
		res.Blind = append(res.Blind, "Docker disk: "+u)
	}
	r := dd.reclaim()
	var bigLayer, bigLog *containerDisk
	for i := range dd.Containers {
		c := &dd.Containers[i]
		if bigLayer == nil || c.Layer > bigLayer.Layer {
			bigLayer = c
		}
		if bigLog == nil || c.Log > bigLog.Log {
			bigLog = c
		}
		if c.Layer >= dockerDiskNote {
			f := layerFinding(dd, c, r)
			f.Evidence.Vars["mount"] = mountOf(env, c.LayerDir)
			res.Findings = append(res.Findings, f)
		}
		if c.Log >= dockerDiskNote && c.LogMaxSize == "" {
			f := logFinding(dd, c, r)
			f.Evidence.Vars["mount"] = mountOf(env, c.LogPath)
			res.Findings = append(res.Findings, f)
		}
	}
	if bigLayer != nil {
		res.Headroom = append(res.Headroom,
			finding.Figure{Name: "biggest container writable layer (" + bigLayer.Label + ")", Value: bigLayer.Layer, Unit: "bytes", Source: bigLayer.LayerDir},
			finding.Figure{Name: "biggest container log (" + bigLog.Label + ")", Value: bigLog.Log, Unit: "bytes", Source: bigLog.LogPath})
	}
	res.Headroom = append(res.Headroom, finding.Figure{Name: "docker system prune would free", Value: r.prune(), Unit: "bytes", Source: "measured under " + dd.Root})
	return res, nil
}

func diskNoteSeverity(v float64) finding.Severity {
	if v >= dockerDiskMedium {
		return finding.Medium
	}
	return finding.Low
}

func layerFinding(dd *dockerDiskState, c *containerDisk, r reclaim) finding.Finding {
	vars := containerDiskVars(dd, c, r)
	vars["dir"], vars["cause"] = c.LayerDir, "layer"
	sum := fmt.Sprintf("Container %s has written %s into its writable layer (%s): that data grows the host's disk outside any volume and is lost when the container is recreated.",
		c.Label, finding.HumanBytes(c.Layer), c.LayerDir)
	if !c.LayerDone {
		sum = fmt.Sprintf("Container %s has written at least %s into its writable layer (%s; not measured in full): that data grows the host's disk outside any volume and is lost when the container is recreated.",
			c.Label, finding.HumanBytes(c.Layer), c.LayerDir)
	}
	return finding.Finding{
		Mode: "FM-C2", Severity: diskNoteSeverity(c.Layer), Subject: "writable layer of container " + c.Name,
		Summary: sum,
		Evidence: finding.Evidence{
			Figures:   append([]finding.Figure{{Name: "writable layer of " + c.Label, Value: c.Layer, Unit: "bytes", Source: c.LayerDir}}, r.figures(dd.Root)...),
			Consumers: containerConsumers(dd, "layer"),
			Notes:     []string{r.sentence(), "Sizes are allocated bytes measured on disk (like du), not asked of dockerd."},
			Vars:      vars,
		},
	}
}

func logFinding(dd *dockerDiskState, c *containerDisk, r reclaim) finding.Finding {
	vars := containerDiskVars(dd, c, r)
	vars["dir"], vars["cause"] = c.LogPath, "log"
	return finding.Finding{
		Mode: "FM-C2", Severity: diskNoteSeverity(c.Log), Subject: "log of container " + c.Name,
		Summary: fmt.Sprintf("Container %s's log file is %s and is not rotated (log driver %s without max-size): it grows until the disk is full.",
			c.Label, finding.HumanBytes(c.Log), orDefault(c.LogDriver, "json-file")),
		Evidence: finding.Evidence{
			Figures:   append([]finding.Figure{{Name: "log of " + c.Label, Value: c.Log, Unit: "bytes", Source: c.LogPath}}, r.figures(dd.Root)...),
			Consumers: containerConsumers(dd, "log"),
			Notes:     []string{r.sentence(), "Sizes are allocated bytes measured on disk (like du), not asked of dockerd."},
			Vars:      vars,
		},
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// containerDiskVars fill the FM-C2 runbook for one container.
func containerDiskVars(dd *dockerDiskState, c *containerDisk, r reclaim) map[string]string {
	vars := map[string]string{
		"owner": "docker", "owner_label": c.Name, "container": c.Name, "container_id": c.ID,
		"log_path": c.LogPath, "layer_dir": c.LayerDir,
		"prune_bytes": finding.HumanBytes(r.prune()),
		// The finding is about this container: no journal step.
		"holds_docker": "yes", "holds_journal": "no",
	}
	if c.Service != "" {
		vars["service"] = c.Service
	}
	dd.pruneVars(vars)
	return vars
}

// pruneVars names, for the runbook, the biggest volume with its users,
// the biggest volume no container uses and the biggest stopped container.
func (dd *dockerDiskState) pruneVars(vars map[string]string) {
	var used, unused *volumeDisk
	for i := range dd.Volumes {
		v := &dd.Volumes[i]
		if used == nil || v.Bytes > used.Bytes {
			used = v
		}
		if len(v.Users) == 0 && (unused == nil || v.Bytes > unused.Bytes) {
			unused = v
		}
	}
	if used != nil {
		vars["volume"] = used.Name
		vars["volume_users"] = strings.Join(used.Users, ",")
	}
	if unused != nil {
		vars["unused_volume"] = unused.Name
	}
	var stopped *containerDisk
	for i := range dd.Containers {
		c := &dd.Containers[i]
		if !c.Running && c.Status != "restarting" && c.Status != "paused" && (stopped == nil || c.Layer+c.Log > stopped.Layer+stopped.Log) {
			stopped = c
		}
	}
	if stopped != nil {
		vars["stopped_container"] = stopped.Name
	}
	vars["prune_bytes"] = finding.HumanBytes(dd.reclaim().prune())
}

// containerConsumers are the biggest writable layers or logs, with the
// biggest volumes, worst first.
func containerConsumers(dd *dockerDiskState, what string) []finding.Consumer {
	var cs []finding.Consumer
	for _, c := range dd.Containers {
		if what == "layer" && c.Layer > 0 {
			cs = append(cs, finding.Consumer{Kind: "container", Name: c.Label + " (writable layer " + c.LayerDir + ")", ID: c.ID, Value: c.Layer, Unit: "bytes"})
		}
		if what == "log" && c.Log > 0 {
			cs = append(cs, finding.Consumer{Kind: "container", Name: c.Label + " (log " + c.LogPath + ")", ID: c.ID, Value: c.Log, Unit: "bytes"})
		}
	}
	sortConsumers(cs)
	return cs[:min(5, len(cs))]
}

// diskConsumers are the Docker things on the filesystem mounted at mount,
// by name: each container's writable layer and log, each volume with its
// users; biggest first, at most n.
func (dd *dockerDiskState) diskConsumers(env *Env, mount string, n int) []finding.Consumer {
	var cs []finding.Consumer
	on := func(p string) bool { return p != "" && mountOf(env, p) == mount }
	for _, c := range dd.Containers {
		if on(c.LayerDir) && c.Layer > 0 {
			cs = append(cs, finding.Consumer{Kind: "container", Name: c.Label + " (writable layer " + c.LayerDir + ")", ID: c.ID, Value: c.Layer, Unit: "bytes"})
		}
		if on(c.LogPath) && c.Log > 0 {
			cs = append(cs, finding.Consumer{Kind: "container", Name: c.Label + " (log " + c.LogPath + ")", ID: c.ID, Value: c.Log, Unit: "bytes"})
		}
	}
	for _, v := range dd.Volumes {
		if on(v.Dir) && v.Bytes > 0 {
			users := "no container"
			if len(v.Users) > 0 {
				users = strings.Join(v.Users, ", ")
			}
			cs = append(cs, finding.Consumer{Kind: "volume", Name: v.Name + " (used by " + users + ", " + v.Dir + ")", Value: v.Bytes, Unit: "bytes"})
		}
	}
	sortConsumers(cs)
	return cs[:min(n, len(cs))]
}

// owner returns the container whose writable layer or log is named by a
// consumer of diskConsumers.
func (dd *dockerDiskState) owner(id string) *containerDisk {
	for i := range dd.Containers {
		if dd.Containers[i].ID == id {
			return &dd.Containers[i]
		}
	}
	return nil
}

// nameDir adds the owner's name to a directory under Docker's data root:
// overlay2/<id> and containers/<id> name their container (and its
// service), volumes/<name> the containers using it; other overlay2
// directories are image layers.
func (dd *dockerDiskState) nameDir(dir string) string {
	rel, ok := strings.CutPrefix(dir, dd.Root+"/")
	if !ok {
		return dir
	}
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) < 2 {
		return dir
	}
	switch parts[0] {
	case "overlay2":
		id := strings.TrimSuffix(parts[1], "-init")
		for _, c := range dd.Containers {
			if c.LayerDir != "" && path.Base(path.Dir(c.LayerDir)) == id {
				return dir + " (container " + c.Label + ")"
			}
		}
		return dir + " (an image layer or a removed container's)"
	case "containers":
		for _, c := range dd.Containers {
			if c.ID == parts[1] {
				return dir + " (container " + c.Label + ")"
			}
		}
	case "volumes":
		for _, v := range dd.Volumes {
			if v.Name == parts[1] {
				if len(v.Users) == 0 {
					return dir + " (volume " + v.Name + ", used by no container)"
				}
				return dir + " (volume " + v.Name + ", used by " + strings.Join(v.Users, ", ") + ")"
			}
		}
	}
	return dir
}
