package kube

import (
	"strings"
	"testing"
	"time"
)

// fuzzSeeds adds every fixture to f, and some damaged copies: CRLF,
// trailing spaces, halves.
func fuzzSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		s := readFixture(f, n)
		f.Add(s)
		f.Add(strings.ReplaceAll(s, "\n", " \r\n"))
		f.Add(s[:len(s)/2])
	}
}

// fuzzCheck runs the diagnosis on what a parser read and checks each
// finding is well formed.
func fuzzCheck(t *testing.T, p Parsed, err error) {
	if err != nil {
		return
	}
	for _, fd := range Diagnose(&p.Cluster, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		if !strings.HasPrefix(fd.Key, fd.Mode+"/") || fd.Subject == "" || fd.Summary == "" || fd.Severity == 0 {
			t.Fatalf("malformed finding %+v", fd)
		}
	}
}

var allFixtures = []string{
	"samples-k8s-1.txt", "get-pods-watch-wide.txt", "get-pods-oomkilled.txt", "get-pods-A-createcontainererror.txt",
	"get-nodes-notready.txt", "describe-pod-crashloop-sigterm.txt", "describe-node-k3os-unreachable.txt",
	"describe-node-conditions-tabs.txt", "crictl-ps-a-etcd-loop.txt", "pulumi-pod-imagepullbackoff.json",
	"pulumi-pod-unschedulable.json", "describe-pod-events-failedscheduling.txt", "kube-apiserver-manifest.yaml",
}

// fuzz budget: 2000x
func FuzzParseGetPods(f *testing.F) {
	fuzzSeeds(f, allFixtures...)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseGetPods(s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		fuzzCheck(t, p, err)
	})
}

// fuzz budget: 2000x
func FuzzParseGetNodes(f *testing.F) {
	fuzzSeeds(f, allFixtures...)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseGetNodes(s)
		fuzzCheck(t, p, err)
	})
}

// fuzz budget: 2000x
func FuzzParseJSON(f *testing.F) {
	fuzzSeeds(f, "pulumi-pod-imagepullbackoff.json", "pulumi-pod-unschedulable.json")
	f.Add(`{"kind":"List","items":[` + readFixture(f, "pulumi-pod-unschedulable.json") + `]}`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseJSON(s)
		fuzzCheck(t, p, err)
	})
}

// fuzz budget: 2000x
func FuzzParseDescribePod(f *testing.F) {
	fuzzSeeds(f, allFixtures...)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseDescribePod(s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		fuzzCheck(t, p, err)
	})
}

// fuzz budget: 2000x
func FuzzParseDescribeNode(f *testing.F) {
	fuzzSeeds(f, allFixtures...)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseDescribeNode(s)
		fuzzCheck(t, p, err)
	})
}

// fuzz budget: 2000x
func FuzzParseCrictlPs(f *testing.F) {
	fuzzSeeds(f, allFixtures...)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCrictlPs(s)
		fuzzCheck(t, p, err)
	})
}
