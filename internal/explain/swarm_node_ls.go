package explain

import "github.com/hinomi/hinomi/internal/swarm"

// swarmNodeLS reads `docker node ls`: nodes Down or Unreachable, and
// whether the managers still hold a Raft majority.
var swarmNodeLS = swarmFormat("docker-node-ls", "docker node ls", "AVAILABILITY", "HOSTNAME",
	func(in *Input) (*swarm.State, swarm.Parsed, error) { return swarm.ParseNodeLS(in.Text) })
