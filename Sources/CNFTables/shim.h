#ifndef GATEWARDEN_CNFTABLES_SHIM_H
#define GATEWARDEN_CNFTABLES_SHIM_H
#include <nftables/libnftables.h>
#endif
