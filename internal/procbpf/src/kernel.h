/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel types the pass reads, each with only the fields it reads.
 * preserve_access_index makes every field access a CO-RE relocation: the
 * loader finds each field's offset in the running kernel's BTF
 * (/sys/kernel/btf/vmlinux), so the object does not depend on the kernel
 * it was built against, and no generated vmlinux.h is needed to build it.
 */
#ifndef HINOMI_KERNEL_H
#define HINOMI_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
/* Named by the prototypes in libbpf's bpf_helper_defs.h. */
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

enum bpf_func_id { BPF_FUNC_unspec = 0 };

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct list_head {
	struct list_head *next, *prev;
};

struct file_operations {
	void *owner;
};

struct file {
	const struct file_operations *f_op;
	void *private_data;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
	unsigned long *open_fds;
};

struct files_struct {
	struct fdtable *fdt;
};

struct rlimit {
	unsigned long rlim_cur;
	unsigned long rlim_max;
};

struct signal_struct {
	int nr_threads;
	struct rlimit rlim[16];
};

struct task_struct {
	unsigned int __state;
	int pid;
	int tgid;
	struct task_struct *group_leader;
	__u64 start_boottime;
	struct files_struct *files;
	struct signal_struct *signal;
};

struct fsnotify_group {
	struct list_head marks_list;
};

struct seq_file {
	char *buf;
};

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

#pragma clang attribute pop

#endif
