package explain

import "github.com/hinomi/hinomi/internal/swarm"

// swarmNodeLS reads `docker node ls`: nodes Down or Unreachable, and
// whether the managers still hold a Raft majority.
var swarmNodeLS = Format{
	Name:    "docker-node-ls",
	Command: "docker node ls",
	Detect: func(in *Input) int {
		return swarmDetect(in, "AVAILABILITY", "HOSTNAME", func() bool {
			_, p, err := swarm.ParseNodeLS(in.Text)
			return err == nil && p.Rows > 0
		})
	},
	Explain: func(in *Input) (Result, error) {
		st, p, err := swarm.ParseNodeLS(in.Text)
		if err != nil {
			return Result{}, err
		}
		return swarmResult("docker-node-ls", st, p, in), nil
	},
}
