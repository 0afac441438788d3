package checks

import "testing"

func TestParseOOMKill(t *testing.T) {
	// Captured from a 6.18 kernel (cgroup v1, Docker's cgroupfs driver)
	// when a container limited to 32 MiB went past it.
	const id = "eaf71b7b07ee2f2f6914a057c1bcf1fb28196fc9899d3342459d48e8803cfaa4"
	line := "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=" + id + ",mems_allowed=0,oom_memcg=/docker/" + id +
		",task_memcg=/docker/" + id + ",task=hinomi-testload,pid=10422,uid=0"
	pid, memcg := parseOOMKill(line)
	if pid != "10422" || memcg != "/docker/"+id {
		t.Errorf("parseOOMKill = %q, %q; want 10422, /docker/%s", pid, memcg, id)
	}
	if pid, memcg := parseOOMKill("Memory cgroup out of memory: Killed process 10422 (hinomi-testload)"); pid != "" || memcg != "" {
		t.Errorf("parseOOMKill of a non-summary line = %q, %q; want nothing", pid, memcg)
	}
}
