// Package swarm diagnoses a Docker Swarm: nodes Down or Unreachable,
// managers without a Raft majority (FM-D10) and services whose tasks are
// rejected or keep failing (FM-C4, FM-C5 when a volume's filesystem will
// not mount). Its State is what the engine's API says, reduced to what the
// diagnosis reads; the live check (internal/checks) fills it from the API
// and records it in a snapshot, and `hinomi explain` fills it from the text
// of `docker service ps`, `docker node ls` and `docker service ls`. Both
// then call the same Diagnose.
package swarm

import "time"

// State is one reading of a swarm, from one node.
type State struct {
	// Source says where the reading came from: "Docker API
	// unix:///var/run/docker.sock" or "docker service ps".
	Source string `json:"source"`
	// LocalState is this node's swarm state: inactive, pending, active,
	// error or locked (docker info .Swarm.LocalNodeState).
	LocalState string `json:"local_state,omitempty"`
	// NodeID is this node's ID; Manager says whether it is a manager
	// (only managers can list nodes, services and tasks).
	NodeID  string `json:"node_id,omitempty"`
	Manager bool   `json:"manager,omitempty"`
	// Error is the swarm's own error (docker info .Swarm.Error).
	Error string `json:"error,omitempty"`
	// Managers and NodeCount are docker info's counts, known even when
	// the node list cannot be read.
	Managers  int `json:"managers,omitempty"`
	NodeCount int `json:"node_count,omitempty"`
	// RemoteManagers are the manager addresses this node knows.
	RemoteManagers []string `json:"remote_managers,omitempty"`
	// HistoryLimit is how many old tasks Swarm keeps per replica
	// (TaskHistoryRetentionLimit, 5 by default); 0 when not known.
	HistoryLimit int `json:"history_limit,omitempty"`
	// NoLeader holds the managers' answer when they have no leader: the
	// Raft majority is lost.
	NoLeader string `json:"no_leader,omitempty"`

	Nodes    []Node    `json:"nodes,omitempty"`
	Services []Service `json:"services,omitempty"`
	Tasks    []Task    `json:"tasks,omitempty"`

	// Unread lists what could not be read, and why, in plain words.
	Unread []string `json:"unread,omitempty"`
}

// Node is one node of `docker node ls`.
type Node struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	// Self marks the node the reading was taken on (the "*" of node ls).
	Self bool `json:"self,omitempty"`
	// Role is manager or worker.
	Role string `json:"role"`
	// State is ready, down, unknown or disconnected; Message is the
	// engine's reason ("heartbeat failure").
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	// Availability is active, pause or drain.
	Availability string `json:"availability,omitempty"`
	// Leader and Reachability (reachable, unreachable, unknown) are a
	// manager's Raft status.
	Leader       bool      `json:"leader,omitempty"`
	Reachability string    `json:"reachability,omitempty"`
	Addr         string    `json:"addr,omitempty"`
	Engine       string    `json:"engine,omitempty"`
	Updated      time.Time `json:"updated,omitzero"`
}

// Service is one service: what it asks for and how much of it runs.
type Service struct {
	ID    string `json:"id,omitempty"`
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
	// Mode is replicated, global, replicated-job or global-job.
	Mode string `json:"mode,omitempty"`
	// Running and Desired are the replicas running and wanted; Desired
	// is -1 when not known.
	Running int `json:"running"`
	Desired int `json:"desired"`
	// Updated is when the service's spec last changed.
	Updated time.Time `json:"updated,omitzero"`
	Mounts  []Mount   `json:"mounts,omitempty"`
}

// Mount is one mount of a service's containers.
type Mount struct {
	Type   string `json:"type"` // bind, volume, tmpfs, …
	Source string `json:"source,omitempty"`
	Target string `json:"target"`
	// Device is a local volume's device option (driver_opts device).
	Device string `json:"device,omitempty"`
}

// Task is one task (one attempt to run one replica).
type Task struct {
	ID      string `json:"id"`
	Service string `json:"service"` // service name
	// Slot is the replica number; global tasks have none and are told
	// apart by node.
	Slot int    `json:"slot,omitempty"`
	Node string `json:"node,omitempty"` // host name, or ID when unknown
	// Current says whether the task is its replica's newest (a row of
	// `docker service ps` without "\_").
	Current      bool   `json:"current,omitempty"`
	Image        string `json:"image,omitempty"`
	DesiredState string `json:"desired_state"`
	// State is new, pending, assigned, accepted, preparing, ready,
	// starting, running, complete, shutdown, failed, rejected, remove or
	// orphaned.
	State string `json:"state"`
	// Err is the task's error in full (ERROR of docker service ps).
	Err string `json:"err,omitempty"`
	// Truncated says Err was cut by the CLI (docker service ps without
	// --no-trunc).
	Truncated bool `json:"truncated,omitempty"`
	// ExitCode is the container's exit code, when it ran.
	ExitCode int `json:"exit_code,omitempty"`
	// Time is when the task entered State.
	Time time.Time `json:"time,omitzero"`
}

// failed reports whether the task is one failed attempt.
func (t *Task) failed() bool { return t.State == "failed" || t.State == "rejected" }

// waiting reports whether the task is on its way to running.
func (t *Task) waiting() bool {
	switch t.State {
	case "new", "pending", "assigned", "accepted", "preparing", "ready", "starting":
		return true
	}
	return false
}
