package signatures

import (
	"os"
	"strings"
	"testing"
)

// modesOf aggregates log and returns the incidents' signature IDs by mode.
func modesOf(t *testing.T, log string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, in := range aggregate(t, loadBuiltin(t), log, 2024) {
		out[in.Sig.Mode] = append(out[in.Sig.Mode], in.Sig.ID)
	}
	return out
}

// A lockup is FM-E2 even when the watchdog panics the kernel right after:
// both the stall and the panic are reported.
func TestLockupThenPanicReportsBoth(t *testing.T) {
	for name, log := range map[string]string{
		// https://github.com/systemd/systemd-centos-ci/issues/660
		"soft lockup, then panic": "[   36.537323] watchdog: BUG: soft lockup - CPU#3 stuck for 27s! [swapper/3:0]\n" +
			"[   36.560762]  </TASK>\n" +
			"[   36.560762] Kernel panic - not syncing: softlockup: hung tasks\n" +
			"[   36.560762] CPU: 3 PID: 0 Comm: swapper/3 Tainted: G             L     6.5.3-arch1-1 #1 ed5b3b894d0aeb37298a77837232ca9b353cc27d\n",
		// https://github.com/Broadcom/sonic-VirtualSwitch/issues/2 (console paste)
		"console soft lockup, then panic": "sonic login: [10304.603691] NMI watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [python3.6:22618]\n" +
			"[10304.611065] Kernel panic - not syncing: softlockup: hung tasks\n",
		// https://github.com/RedPill-TTG/redpill-lkm/issues/21: the panic
		// line is all the hard lockup left.
		"hard lockup panic": "[41152.354507] Kernel panic - not syncing: Watchdog detected hard LOCKUP on cpu 1\n" +
			"[41152.389469] CPU: 1 PID: 5121 Comm: influxd Tainted: PF          O 3.10.108 #42218\n",
		// https://github.com/alibaba/diagnose-tools/issues/107, pasted
		// with the viewer's line numbers.
		"numbered hard lockup panic": "  11745 [46223316.649832] Kernel panic - not syncing: Hard LOCKUP\n" +
			"  11746 [46223316.652645] CPU: 0 PID: 282859 Comm: dockerd-current Kdump: loaded Tainted: G        W  OE K------------   3.10.0-862.mt20190308.130.el7.x86_64 #1\n",
	} {
		t.Run(name, func(t *testing.T) {
			m := modesOf(t, log)
			if len(m["FM-E2"]) != 1 || len(m["FM-E1"]) != 1 {
				t.Errorf("incidents by mode %v, want one FM-E2 (the lockup) and one FM-E1 (the panic)", m)
			}
		})
	}
}

// Healthy cluster events are news, not findings: nodes joining, a
// planned membership change, links coming up, quorum regained.
func TestHealthyClusterEventsAreNotFindings(t *testing.T) {
	for name, log := range map[string]string{
		// https://github.com/corosync/corosync/issues/755 ("nodes joining fine")
		"nodes joining": "Jul 19 17:22:32 host-a corosync[15195]:  [TOTEM ] A new membership (10.62.161.6:74) was formed. Members joined: 16\n" +
			"Jul 19 17:22:32 host-a corosync[15195]:  [QUORUM] Members[10]: 2 5 15 6 3 11 16 12 4 9\n" +
			"Jul 19 17:22:32 host-a corosync[15195]:  [MAIN  ] Completed service synchronization, ready to provide service.\n" +
			"Jul 19 17:22:33 host-a corosync[15195]:  [TOTEM ] A new membership (10.62.161.6:78) was formed. Members joined: 13\n" +
			"Jul 19 17:22:33 host-a corosync[15195]:  [QUORUM] Members[11]: 2 13 5 15 6 3 11 16 12 4 9\n" +
			"Jul 19 17:22:33 host-a corosync[15195]:  [MAIN  ] Completed service synchronization, ready to provide service.\n",
		// https://github.com/corosync/corosync/issues/559
		"a node joins, its link comes up": "May 12 20:49:39 [16976] Hp-09 corosync notice  [TOTEM ] A new membership (1:15152) was formed. Members joined: 2\n" +
			"May 12 20:49:39 [16976] Hp-09 corosync warning [CPG   ] downlist left_list: 0 received\n" +
			"May 12 20:49:39 [16976] Hp-09 corosync notice  [QUORUM] Members[2]: 1 2\n" +
			"May 12 20:49:39 [16976] Hp-09 corosync notice  [MAIN  ] Completed service synchronization, ready to provide service.\n" +
			"May 12 20:49:39 [16976] Hp-09 corosync info    [KNET  ] rx: host: 2 link: 1 is up\n",
		// ../shared/seeds/003: the quorum coming back on its own.
		"quorum regained": "    corosync[3813]:   [QUORUM] This node is within the primary component and will provide service.\n" +
			"    pmxcfs[3703]: [status] notice: node has quorum\n",
	} {
		t.Run(name, func(t *testing.T) {
			if m := modesOf(t, log); len(m) > 0 {
				t.Errorf("healthy events raised %v", m)
			}
		})
	}
}

// A goroutine dump shows a hang when several goroutines wait on locks for
// many minutes; one long wait, or goroutines idle in chan receive or a
// syscall for days, is a daemon's normal life.
func TestGoroutineDumpBlockedCount(t *testing.T) {
	// https://github.com/moby/moby/issues/25321 (goroutine headers of a
	// dockerd dump: docker ps hung behind the container store's lock)
	one := "goroutine 3469 [semacquire, 10 minutes]:\n" +
		"sync.runtime_Semacquire(0xc820482bd4)\n" +
		"\t/usr/local/go/src/runtime/sema.go:47 +0x26\n"
	if m := modesOf(t, one); len(m) > 0 {
		t.Errorf("one goroutine waiting 10 minutes raised %v", m)
	}
	// https://github.com/moby/moby/issues/37652 and #29838: idle
	// goroutines of a healthy containerd.
	idle := "goroutine 1 [chan receive, 83123 minutes]:\n" +
		`time="2017-01-07T15:06:59.299511164+08:00" level=info msg="=== BEGIN goroutine stack dump ===\ngoroutine 23 [running]:\nmain.dumpStacks()\n\t/tmp/tmp.Ufti8QpZvG/src/github.com/docker/containerd/containerd/main.go:102 +0x98\n\ngoroutine 1 [chan receive, 32987 minutes]:\nmain.daemon(0xc8201d03c0, 0x0, 0x0)\n\ngoroutine 17 [syscall, 32987 minutes, locked to thread]:\nruntime.goexit()"` + "\n"
	if m := modesOf(t, idle); len(m) > 0 {
		t.Errorf("idle goroutines raised %v", m)
	}
	// https://github.com/docker/for-linux/issues/543: two goroutines of a
	// dockerd whose inspect, exec and kill hang, waiting on a container's
	// lock for days.
	b, err := os.ReadFile("testdata/corpus/distress/e7-goroutines-semacquire-docker-inspect.txt")
	if err != nil {
		t.Fatal(err)
	}
	ins := aggregate(t, loadBuiltin(t), string(b), 2024)
	if len(ins) != 1 || ins[0].Sig.ID != "goroutines-blocked" || ins[0].Count != 2 {
		t.Fatalf("two blocked goroutines: %d incidents, want goroutines-blocked with a count of 2", len(ins))
	}
	if f := ins[0].Finding("h"); f.Mode != "FM-E7" || !strings.Contains(f.Summary, "2 times") {
		t.Errorf("finding %s %q", f.Mode, f.Summary)
	}
}

// A swarm service whose task is rejected again and again is one incident
// whose count is the loop's length.
func TestSwarmRejectedLoop(t *testing.T) {
	// ../shared/samples/docker-1.txt: docker service ps --no-trunc ldap
	log := `ID                          NAME                IMAGE                               NODE                DESIRED STATE       CURRENT STATE             ERROR                                                                                                        PORTS
swcu3n4b70urjtwhdzf92jgh9   ldap.1              s-hive2.op:5000/image_ldap:latest   s-hive1             Ready               Rejected 3 seconds ago    "failed to mount local volume: mount /dev/drbd8:/var/lib/docker/volumes/ldap_data/_data: invalid argument"
vc210ej598da9yuc9l1iw3e0i    \_ ldap.1          s-hive2.op:5000/image_ldap:latest   s-hive2             Shutdown            Rejected 9 seconds ago    "failed to mount local volume: mount /dev/drbd8:/var/lib/docker/volumes/ldap_data/_data: invalid argument"
dk8sxitj3v7uyjhmkh57cneoz    \_ ldap.1          s-hive2.op:5000/image_ldap:latest   s-hive0             Shutdown            Rejected 14 seconds ago   "failed to mount local volume: mount /dev/drbd8:/var/lib/docker/volumes/ldap_data/_data: invalid argument"
`
	var loop *Incident
	for _, in := range aggregate(t, loadBuiltin(t), log, 2024) {
		if in.Sig.ID == "swarm-task-rejected" {
			loop = in
		}
	}
	if loop == nil || loop.Count != 3 || loop.Fields["service"] != "ldap" || loop.Sig.Mode != "FM-C4" {
		t.Fatalf("rejected loop: %+v", loop)
	}
}

// A line matches whatever wraps it: the same signatures come out of the
// real captures of colours, viewers' line numbers and wall broadcasts.
func TestWrappedLinesMatch(t *testing.T) {
	m := NewMatcher(loadBuiltin(t))
	for file, want := range map[string][]string{
		"dmesg-color.txt":  {"pids-cgroup-fork-rejected", "oom-killer-invoked"},
		"line-numbers.txt": {"pids-cgroup-fork-rejected", "oom-killer-invoked"},
		"wrappers.txt":     {"soft-lockup", "rcu-stall"},
	} {
		b, err := os.ReadFile("../logline/testdata/formats/" + file)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, e := range scanText(t, m, string(b)) {
			got[e.Sig.ID] = true
			if strings.ContainsRune(e.Entry.Message, 0x1b) {
				t.Errorf("%s: colour left in the message %q", file, e.Entry.Message)
			}
		}
		for _, id := range want {
			if !got[id] {
				t.Errorf("%s: %s not found (found %v)", file, id, got)
			}
		}
	}
}
