#ifndef GATEWARDEN_CLINUX_SHIM_H
#define GATEWARDEN_CLINUX_SHIM_H
/* Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module lacks. */
#include <linux/sched.h>

int setns(int fd, int nstype);
#endif
