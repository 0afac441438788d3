package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// maxForked bounds -fork-until-full when no limit stops it.
const maxForked = 4096

// forkUntilFull forks bare children until the kernel refuses one with
// EAGAIN, the way any program's fork fails when its cgroup reaches
// pids.max. A Go child would need several threads of its own and could die
// half-started; a bare child is exactly one task. Once refused, one child
// is let go, so that this program can still make a thread if its runtime
// needs one.
func (st *state) forkUntilFull() error {
	for len(st.forked) < maxForked {
		pid, errno := forkBare()
		if errno == syscall.EAGAIN {
			if len(st.forked) == 0 {
				return errors.New("-fork-until-full: the very first fork was refused (EAGAIN)")
			}
			last := st.forked[len(st.forked)-1]
			st.forked = st.forked[:len(st.forked)-1]
			_ = syscall.Kill(last, syscall.SIGKILL)
			_, _ = syscall.Wait4(last, nil, 0, nil)
			return nil
		}
		if errno != 0 {
			return fmt.Errorf("-fork-until-full: fork %d: %w", len(st.forked)+1, errno)
		}
		st.forked = append(st.forked, pid)
	}
	return fmt.Errorf("-fork-until-full: %d children and no limit refused one", maxForked)
}

// forkBare forks a child that runs no Go code: between fork and its death
// it only makes raw system calls (as the standard library's own fork+exec
// does), asking to be killed with its parent and then waiting forever.
//
//go:norace
//go:nosplit
func forkBare() (pid int, errno syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	for {
		// ppoll with no descriptors and no timeout waits for a signal.
		syscall.RawSyscall6(syscall.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
	}
}

// startHog starts the -hog child and reports on standard error how it
// ended, without waiting for it.
func (st *state) startHog(mb int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own executable for -hog-mb: %w", err)
	}
	cmd := exec.Command(exe, "-hog", "-hog-mb", strconv.Itoa(mb))
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the -hog-mb child: %w", err)
	}
	st.children = append(st.children, cmd)
	return nil
}

// hog allocates mb MiB, touches every page so that it is really charged,
// and holds it until a signal.
func hog(mb int) {
	const page = 4096
	var held [][]byte
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += page {
			b[j] = 1
		}
		held = append(held, b)
	}
	idle()
	_ = held
}
