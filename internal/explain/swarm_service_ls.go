package explain

import "github.com/hinomi/hinomi/internal/swarm"

// swarmServiceLS reads `docker service ls`: services short of their
// replicas. It cannot say why; the finding names the command that does.
var swarmServiceLS = swarmFormat("docker-service-ls", "docker service ls", "REPLICAS", "MODE",
	func(in *Input) (*swarm.State, swarm.Parsed, error) { return swarm.ParseServiceLS(in.Text) })
