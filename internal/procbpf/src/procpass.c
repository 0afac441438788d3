// SPDX-License-Identifier: GPL-2.0
/*
 * hinomi's pass over processes, descriptors and threads, as a BPF task
 * iterator. For every thread group leader it counts the open descriptors,
 * the inotify instances among them and the watches (marks) behind each,
 * and reads RLIMIT_NOFILE; for every thread it reads the state, and
 * reports those in uninterruptible sleep (D).
 *
 * One fixed-size record (struct rec, same layout in procbpf.go) goes out
 * per leader and per thread in D, with bpf_seq_write: one write per task,
 * so that the seq_file's retry of a task on a full buffer cannot write a
 * record twice.
 *
 * Rebuilt by scripts/bpf (clang, libbpf's helper headers); the object is
 * committed next to the Go package and embedded in the binary.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL"; /* bpf_seq_write and probe reads are GPL-only */

/* The reader's own inotify descriptor, set before load: the program learns
 * the f_op of inotify files from it (inotify_fops is data, and absent from
 * /proc/kallsyms without CONFIG_KALLSYMS_ALL). */
volatile const __s32 calib_fd = -1;

/* bpf_loop's own hard limit. Never 0: a loop count the verifier sees as a
 * constant 0 trips a verifier bug on some kernels. */
volatile const __u32 max_marks = 1 << 23;

__u64 ino_fop;    /* inotify files' f_op, 0 until learned */
__u64 calib_file; /* the reader's own instance, which is not counted */

/* Table scans and mark walks that hit their bound, ever. A global, not a
 * field of the scan's state on the stack: the verifier tracks stack values
 * exactly, and one more counter there multiplies the states it explores
 * past its limit. */
__u32 capped;

enum {
	REC_LEADER = 1,  /* a thread group leader: the counts are set */
	REC_D = 2,       /* the thread is in uninterruptible sleep */
	REC_CAPPED = 4,  /* a table scan or a mark walk hit its bound */
};

struct rec {
	__u32 tgid, tid;
	__u32 flags, state;
	__u32 threads, fds, instances, watches;
	__u64 start_ns;  /* start_boottime */
	__u64 nofile;    /* RLIMIT_NOFILE soft limit */
};

struct walk {
	struct list_head *head, *pos;
	__u32 n;
};

static long mark_cb(__u64 i, void *vctx)
{
	struct walk *w = vctx;
	struct list_head *pos = w->pos; /* not in the read: struct walk is not the kernel's */
	struct list_head *next = BPF_CORE_READ(pos, next);
	if (!next || next == w->head)
		return 1;
	w->pos = next;
	w->n++;
	return 0;
}

/* A table is read 512 slots (8 words of the open-fd bitmap) at a time:
 * forked children keep a parent's big table with a handful of descriptors
 * open, and empty chunks are passed over with one read. */
struct scan {
	struct file **fd;
	unsigned long *open_fds;
	unsigned long words[8];
	__u32 nwords; /* words in the bitmap: max_fds / 64 */
	__u32 chunk;
	__u32 fds, instances, watches;
};

/* inotify_watches is the number of watches behind file, or -1 when it is
 * not an inotify instance. A global function: the verifier checks it once,
 * where a static one would be checked again at each of the 8 slots of a
 * group, which made loading cost several times more. */
__attribute__((noinline)) int inotify_watches(__u64 file)
{
	struct file *f = (struct file *)file;
	if ((__u64)BPF_CORE_READ(f, f_op) != ino_fop)
		return -1;
	char *g = BPF_CORE_READ(f, private_data);
	struct walk w = {};
	w.head = (struct list_head *)(g + bpf_core_field_offset(struct fsnotify_group, marks_list));
	w.pos = w.head;
	if (bpf_loop(max_marks, mark_cb, &w, 0) >= max_marks)
		capped++;
	return w.n;
}

/* One group of 8 slots of the current chunk. */
static long group_cb(__u64 gi, void *vctx)
{
	struct scan *s = vctx;
	__u32 wi = (gi >> 3) & 7;
	__u32 byte = (s->words[wi] >> ((gi & 7) * 8)) & 0xff;
	if (!byte)
		return 0;
	struct file *slots[8] = {};
	if (bpf_probe_read_kernel(slots, sizeof(slots), &s->fd[(__u64)s->chunk * 512 + gi * 8])) {
		capped++;
		return 1;
	}
	for (int k = 0; k < 8; k++) {
		if (!((byte >> k) & 1) || !slots[k] || (__u64)slots[k] == calib_file)
			continue;
		s->fds++;
		int n = inotify_watches((__u64)slots[k]);
		if (n < 0)
			continue;
		s->instances++;
		s->watches += n;
	}
	return 0;
}

static long chunk_cb(__u64 ci, void *vctx)
{
	struct scan *s = vctx;
	__u32 left = s->nwords - ci * 8;
	if (left >= 8) {
		if (bpf_probe_read_kernel(s->words, sizeof(s->words), &s->open_fds[ci * 8])) {
			capped++;
			return 1;
		}
	} else {
		/* The last chunk of a table that is not a multiple of 512
		 * slots (64, 256, or a size fs.nr_open caps): its own words
		 * only, the rest of the chunk empty. */
		for (int i = 0; i < 8; i++) {
			s->words[i] = 0;
			if (i < left && bpf_probe_read_kernel(&s->words[i], 8, &s->open_fds[ci * 8 + i])) {
				capped++;
				return 1;
			}
		}
	}
	if (!(s->words[0] | s->words[1] | s->words[2] | s->words[3] |
	      s->words[4] | s->words[5] | s->words[6] | s->words[7]))
		return 0;
	s->chunk = ci;
	bpf_loop(64, group_cb, s, 0);
	return 0;
}

/* learn sets ino_fop from the reader's calibration descriptor; the
 * iterator runs inside the reader's read(). */
static int learn(void)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct fdtable *fdt = cur->files->fdt;
	struct file **fd = fdt->fd;
	struct file *f = 0;
	if (calib_fd >= 0 && calib_fd < fdt->max_fds)
		bpf_probe_read_kernel(&f, sizeof(f), &fd[calib_fd]);
	if (!f)
		return 0;
	calib_file = (__u64)f;
	ino_fop = (__u64)BPF_CORE_READ(f, f_op);
	return 1;
}

SEC("iter/task")
int procpass(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *t = ctx->task;
	if (!t)
		return 0;
	if (!ino_fop && !learn())
		return 0;
	struct rec r = {};
	unsigned int st = t->__state;
	r.tgid = t->tgid;
	r.tid = t->pid;
	r.state = st;
	/* TASK_UNINTERRUPTIBLE without TASK_NOLOAD: what /proc shows as D
	 * (TASK_IDLE, both bits, shows as I). */
	if ((st & 0x2) && !(st & 0x400))
		r.flags = REC_D;
	if (t->pid == t->tgid) {
		r.flags |= REC_LEADER;
		r.start_ns = t->start_boottime;
		struct signal_struct *sig = t->signal;
		r.threads = sig->nr_threads;
		r.nofile = sig->rlim[7].rlim_cur; /* RLIMIT_NOFILE */
		struct files_struct *files = t->files;
		if (files) { /* none when exiting: no descriptors, as in /proc */
			struct fdtable *fdt = files->fdt;
			__u32 capped_before = capped;
			struct scan s = {};
			s.fd = fdt->fd;
			s.open_fds = fdt->open_fds;
			s.nwords = fdt->max_fds / 64; /* max_fds is a multiple of BITS_PER_LONG */
			__u32 chunks = (s.nwords + 7) / 8;
			if (chunks && bpf_loop(chunks, chunk_cb, &s, 0) < 0)
				capped++;
			r.fds = s.fds;
			r.instances = s.instances;
			r.watches = s.watches;
			if (capped != capped_before)
				r.flags |= REC_CAPPED;
		}
	}
	if (r.flags & (REC_LEADER | REC_D))
		bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
