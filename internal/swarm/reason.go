package swarm

import (
	"regexp"
	"strings"
)

// cause is what a task's error means, in plain words, and which runbook
// fits it.
type cause struct {
	mode  string // FM-C4, or FM-C5 when a volume's filesystem is damaged
	plain string // the reason for a tired operator
	vars  map[string]string
}

var (
	// failed to mount local volume: mount /dev/drbd8:/var/lib/docker/volumes/ldap_data/_data: invalid argument
	reMountVolume = regexp.MustCompile(`failed to mount local volume: mount (\S+?):(/\S*?/volumes/([^/\s]+)/_data|\S+)(?:, flags: \S+)?: (.+)$`)
	// invalid mount config for type "bind": bind source path does not exist: /x
	reBindSource = regexp.MustCompile(`bind (?:mount )?source path does not exist(?:: (.+))?$`)
	reNoNode     = regexp.MustCompile(`no suitable node(?: \((.*?)\)?)?$`)
	reExit       = regexp.MustCompile(`task: non-zero exit \((-?\d+)\)`)
	reNoImage    = regexp.MustCompile(`(?i)No such image: (\S+)|pull access denied for (\S+?),|manifest for (\S+) not found|manifest unknown|image .* not found|repository does not exist`)
	reOverlay    = regexp.MustCompile(`error creating overlay mount|failed to mount overlay|layer does not exist|no such file or directory.*overlay2`)
	reNoVolume   = regexp.MustCompile(`(?:volume|no such volume)[^:]*: ?(\S+)? ?not found|no such volume`)
)

// damagedFS are mount errors that mean the filesystem on the device is
// damaged or not what the volume says (FM-C5): XFS and ext4 answer a
// corrupt superblock with EINVAL ("invalid argument"), EUCLEAN
// ("structure needs cleaning") or "wrong fs type, bad superblock".
var damagedFS = []string{"invalid argument", "structure needs cleaning", "wrong fs type", "bad superblock", "input/output error", "bad message"}

// explainErr reads a task's error.
func explainErr(err string, truncated bool) cause {
	c := cause{mode: "FM-C4", vars: map[string]string{}}
	switch m := reMountVolume.FindStringSubmatch(err); {
	case m != nil:
		dev, target, vol, why := m[1], m[2], m[3], m[4]
		c.vars["device"], c.vars["mount_target"] = dev, target
		if vol != "" {
			c.vars["volume"] = vol
		}
		for _, d := range damagedFS {
			if strings.Contains(strings.ToLower(why), d) {
				c.mode = "FM-C5"
				c.plain = "the filesystem on " + dev + " (volume " + orUnknown(vol) + ") does not mount (" + why + "): on XFS or ext4 that means a damaged filesystem, to be repaired with the service scaled to 0"
				return c
			}
		}
		c.plain = "the local volume " + orUnknown(vol) + " on " + dev + " does not mount: " + why
		return c
	}
	if m := reBindSource.FindStringSubmatch(err); m != nil {
		src := "a bind mount's source"
		if m[1] != "" {
			c.vars["path"] = m[1]
			src += " " + m[1]
		}
		c.plain = src + " does not exist on the node the task was sent to (create it there, or pin the service with a placement constraint to the nodes that have it)"
		return c
	}
	if m := reNoNode.FindStringSubmatch(err); m != nil {
		detail := strings.TrimSpace(m[1])
		c.plain = "no node can run the task"
		switch {
		case strings.Contains(detail, "insufficien"):
			c.plain += ": no node has the CPU or memory the service reserves"
		case strings.Contains(detail, "constraint"), strings.Contains(detail, "placement"):
			c.plain += ": no node matches its placement constraints"
		case strings.Contains(detail, "not available for new tasks"), strings.Contains(detail, "drain"):
			c.plain += ": the nodes are drained, paused or down"
		case strings.Contains(detail, "platform"):
			c.plain += ": no node has the image's platform (OS/architecture)"
		case detail != "":
			c.plain += ": " + detail
		}
		return c
	}
	if m := reExit.FindStringSubmatch(err); m != nil {
		c.vars["exit_code"] = m[1]
		c.plain = "its container exits with code " + m[1] + exitMeaning(m[1]) + " soon after it starts (read its logs)"
		return c
	}
	if reNoImage.MatchString(err) {
		c.plain = "its image cannot be found or pulled on the node (a private registry unreachable, a tag that does not exist, or a missing --with-registry-auth)"
		return c
	}
	if reOverlay.MatchString(err) {
		c.mode = "FM-C5"
		c.plain = "the container's overlay storage is broken on the node (a layer directory is missing or will not mount)"
		return c
	}
	if reNoVolume.MatchString(err) {
		c.plain = "a volume it needs does not exist on the node"
		return c
	}
	switch {
	case strings.Contains(err, "OCI runtime") || strings.Contains(err, "starting container failed"):
		c.plain = "the runtime could not start its container"
	case strings.Contains(err, "network") && strings.Contains(err, "not found"):
		c.plain = "a network it is attached to does not exist"
	case truncated && strings.HasPrefix(err, "failed to mount local vol"):
		c.plain = "a local volume does not mount on the node; the part of the error that says which device and why was cut (an `invalid argument` there means a damaged filesystem, FM-C5)"
	case truncated:
		c.plain = "" // the rest of the error would say
	default:
		c.plain = "the task failed"
	}
	return c
}

func exitMeaning(code string) string {
	switch code {
	case "137":
		return " (SIGKILL, often the OOM killer)"
	case "143":
		return " (SIGTERM)"
	case "139":
		return " (SIGSEGV)"
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
