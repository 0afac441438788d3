package proctable

import "testing"

func TestOwnerOfPath(t *testing.T) {
	const id = "3f1c0e2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e"
	tests := []struct {
		path string
		want Owner
	}{
		{"/docker/" + id, Owner{Kind: "docker", ID: id}},
		{"/system.slice/docker-" + id + ".scope", Owner{Kind: "docker", ID: id}},
		{"/machine.slice/libpod-" + id + ".scope/container", Owner{Kind: "podman", ID: id}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d3b5a0e_8f7c_4d5e_9a1b_2c3d4e5f6a7b.slice/cri-containerd-" + id + ".scope",
			Owner{Kind: "kubernetes", ID: id, Pod: "0d3b5a0e-8f7c-4d5e-9a1b-2c3d4e5f6a7b"}},
		{"/kubepods/besteffort/pod0d3b5a0e-8f7c-4d5e-9a1b-2c3d4e5f6a7b/" + id,
			Owner{Kind: "kubernetes", ID: id, Pod: "0d3b5a0e-8f7c-4d5e-9a1b-2c3d4e5f6a7b"}},
		{"/lxc/105/ns/system.slice/docker.service", Owner{Kind: "lxc", ID: "105"}},
		{"/lxc.payload.105/init.scope", Owner{Kind: "lxc", ID: "105"}},
		{"/qemu.slice/101.scope", Owner{Kind: "vm", ID: "101"}},
		{"/system.slice/containerd.service", Owner{Kind: "service", ID: "containerd.service"}},
		{"/user.slice/user-1000.slice/session-3.scope", Owner{Kind: "session", ID: "session-3.scope"}},
		{"/", Owner{Kind: "host"}},
		{"/init.scope", Owner{Kind: "host"}},
	}
	for _, tt := range tests {
		if got := OwnerOfPath(tt.path); got != tt.want {
			t.Errorf("OwnerOfPath(%q) = %+v; want %+v", tt.path, got, tt.want)
		}
	}
}

// fuzz budget: 60000x (scripts/test runs each target for a count of executions)
func FuzzOwnerOfPath(f *testing.F) {
	f.Add("/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope")
	f.Add("/lxc/105/ns")
	f.Fuzz(func(t *testing.T, p string) {
		o := OwnerOfPath(p)
		if o.Kind == "" {
			t.Fatalf("empty kind for %q", p)
		}
		_ = o.Label()
	})
}
