/*
 * sandbox_vm_internal.h - shared between the sandbox_vm*.c files.
 */
#ifndef NUCLEUS_SANDBOX_VM_INTERNAL_H
#define NUCLEUS_SANDBOX_VM_INTERNAL_H

#include <stddef.h>

#include "nucleus/error.h"

/* Return the seccomp filter for QEMU (sandbox_vm_seccomp.c) as raw BPF:
 * *code (OUT) is a struct sock_filter array of *count entries, built on
 * first use and owned by the library. */
int nu__vm_seccomp_program(const void **code, size_t *count, nu_err_t *err);

#endif
