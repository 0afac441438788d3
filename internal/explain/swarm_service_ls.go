package explain

import "github.com/hinomi/hinomi/internal/swarm"

// swarmServiceLS reads `docker service ls`: services short of their
// replicas. It cannot say why; the finding names the command that does.
var swarmServiceLS = Format{
	Name:    "docker-service-ls",
	Command: "docker service ls",
	Detect: func(in *Input) int {
		return swarmDetect(in, "REPLICAS", "MODE", func() bool {
			_, p, err := swarm.ParseServiceLS(in.Text)
			return err == nil && p.Rows > 0
		})
	},
	Explain: func(in *Input) (Result, error) {
		st, p, err := swarm.ParseServiceLS(in.Text)
		if err != nil {
			return Result{}, err
		}
		return swarmResult("docker-service-ls", st, p, in), nil
	},
}
