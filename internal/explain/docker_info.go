package explain

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"

	"github.com/hinomi/hinomi/internal/checks"
)

// dockerInfo reads `docker info` (the text of every CLI version since the
// flat 1.x layout, or `docker info --format '{{json .}}'`) and diagnoses
// the engine's Swarm state and devicemapper space with checks'
// DockerInfoFindings, which reads the same fields of GET /info.
var dockerInfo = Format{
	Name:    "docker-info",
	Command: "docker info",
	Detect:  detectDockerInfo,
	Explain: explainDockerInfo,
}

func detectDockerInfo(in *Input) int {
	has := func(k string) bool {
		for _, l := range in.Lines {
			if strings.HasPrefix(strings.TrimSpace(l), k) {
				return true
			}
		}
		return false
	}
	switch {
	case has("Server Version:") && (has("Storage Driver:") || has("Containers:")):
		return 100
	case strings.Contains(in.Text, `"Driver"`) && (strings.Contains(in.Text, `"ServerVersion"`) || strings.Contains(in.Text, `"ContainersRunning"`)):
		return 100
	case in.Command == "docker info" || in.Command == "docker system info":
		if has("Containers:") || has("Server:") || has("Swarm:") {
			return 95
		}
	}
	return 0
}

func explainDockerInfo(in *Input) (Result, error) {
	info, notes, err := parseDockerInfo(in.Text)
	if err != nil {
		return Result{Notes: notes}, err
	}
	fs, more := checks.DockerInfoFindings(info)
	return Result{Findings: fs, Notes: append(notes, more...)}, nil
}

// infoStrings are the top-level text fields docker info prints, by label.
var infoStrings = map[string]func(*system.Info) *string{
	"Server Version":   func(i *system.Info) *string { return &i.ServerVersion },
	"Storage Driver":   func(i *system.Info) *string { return &i.Driver },
	"Logging Driver":   func(i *system.Info) *string { return &i.LoggingDriver },
	"Cgroup Driver":    func(i *system.Info) *string { return &i.CgroupDriver },
	"Cgroup Version":   func(i *system.Info) *string { return &i.CgroupVersion },
	"Kernel Version":   func(i *system.Info) *string { return &i.KernelVersion },
	"Operating System": func(i *system.Info) *string { return &i.OperatingSystem },
	"Name":             func(i *system.Info) *string { return &i.Name },
	"ID":               func(i *system.Info) *string { return &i.ID },
	"Docker Root Dir":  func(i *system.Info) *string { return &i.DockerRootDir },
}

// parseDockerInfo reads docker info's "Key: value" lines into the API's
// Info, nesting by indentation: old CLIs print the server's keys at the
// margin, newer ones under "Server:", one space in.
func parseDockerInfo(text string) (system.Info, []string, error) {
	var info system.Info
	if t, _ := jsonStart(text); strings.HasPrefix(strings.TrimLeft(t, "`"), "{") {
		raw, notes, err := readJSON(t)
		if err != nil {
			return info, notes, fmt.Errorf("reading docker info JSON: %w", err)
		}
		if err := json.Unmarshal(raw, &info); err != nil {
			return info, notes, fmt.Errorf("reading docker info JSON: %w", err)
		}
		return info, notes, nil
	}
	var notes []string
	type level struct {
		indent int
		key    string
	}
	var stack []level
	seen := 0
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " \t"))
		if w, ok := strings.CutPrefix(t, "WARNING: "); ok {
			info.Warnings = append(info.Warnings, w)
			continue
		}
		if e, ok := strings.CutPrefix(t, "ERROR: "); ok {
			notes = append(notes, "docker info printed an error: "+e)
			continue
		}
		key, val, ok := strings.Cut(t, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		parent := ""
		if len(stack) > 0 {
			parent = stack[len(stack)-1].key
		}
		stack = append(stack, level{indent, key})
		n, nerr := strconv.Atoi(val)
		seen++
		switch {
		case parent == "Containers" && nerr == nil:
			switch key {
			case "Running":
				info.ContainersRunning = n
			case "Paused":
				info.ContainersPaused = n
			case "Stopped":
				info.ContainersStopped = n
			}
		case parent == "Storage Driver":
			info.DriverStatus = append(info.DriverStatus, [2]string{key, val})
		case parent == "Swarm":
			switch key {
			case "NodeID":
				info.Swarm.NodeID = val
			case "Is Manager":
				info.Swarm.ControlAvailable = val == "true"
			case "Managers":
				info.Swarm.Managers = n
			case "Nodes":
				info.Swarm.Nodes = n
			case "Error":
				info.Swarm.Error = val
			case "Node Address":
				info.Swarm.NodeAddr = val
			}
		case key == "Containers" && nerr == nil && parent != "Swarm":
			info.Containers = n
		case key == "Images" && nerr == nil:
			info.Images = n
		case infoStrings[key] != nil && (key != "ID" || parent != "Swarm"):
			*infoStrings[key](&info) = val
		case key == "Swarm":
			info.Swarm.LocalNodeState = swarm.LocalNodeState(val)
		case key == "Live Restore Enabled":
			info.LiveRestoreEnabled = val == "true"
		default:
			seen--
		}
	}
	if seen == 0 {
		return info, notes, errors.New("no docker info fields (Containers:, Server Version:, Storage Driver: …)")
	}
	return info, notes, nil
}
