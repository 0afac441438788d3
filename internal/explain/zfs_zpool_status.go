package explain

import (
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/hinomi/hinomi/internal/storage"
)

var (
	reZpoolPool  = regexp.MustCompile(`(?m)^\s*pool: \S+`)
	reZpoolState = regexp.MustCompile(`(?m)^\s*state: [A-Z]+`)
)

// ZpoolStatus reads `zpool status` (-v, -x, -p; ZFS 0.6 to 2.x).
var ZpoolStatus = Format{
	Name:    "zpool-status",
	Command: "zpool status -v",
	Detect: func(in *Input) int {
		switch {
		case reZpoolPool.MatchString(in.Text) && reZpoolState.MatchString(in.Text):
			return 95
		case strings.HasPrefix(in.Command, "zpool status"):
			return 90
		}
		return 0
	},
	Explain: func(in *Input) (Result, error) {
		pools, skipped := storage.ParseZpoolStatus([]byte(in.Text))
		if len(pools) == 0 {
			if strings.Contains(in.Text, "all pools are healthy") || strings.Contains(in.Text, "no pools available") {
				return Result{Notes: []string{"zpool status reports no pool with a problem."}}, nil
			}
			return Result{}, errors.New("no \"pool:\" block in the text")
		}
		// The time a paste was taken is unknown, so the age of its last
		// scrub is not judged.
		res := Result{Findings: storage.DiagnoseZFS(pools, nil, time.Time{}, "zpool status")}
		if skipped > 0 {
			res.Notes = append(res.Notes, "Some lines were not part of a pool's status and were skipped.")
		}
		res.Notes = append(res.Notes, "The age of the last scrub is judged only on a live host (hinomi doctor).")
		return res, nil
	},
}
