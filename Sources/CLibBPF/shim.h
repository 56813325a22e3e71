#ifndef GATEWARDEN_CLIBBPF_SHIM_H
#define GATEWARDEN_CLIBBPF_SHIM_H
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/if_link.h>
#endif
