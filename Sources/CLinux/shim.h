#ifndef GATEWARDEN_CLINUX_SHIM_H
#define GATEWARDEN_CLINUX_SHIM_H
/* Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module lacks. */
#include <linux/sched.h>
/* bpffs (BPFFilesystem): statfs and BPF_FS_MAGIC, mount, flock; not in Swift's Glibc module. */
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/vfs.h>

int setns(int fd, int nstype);
/* The mask is a cpu_set_t, declared here as bytes so no GNU-only type is needed. */
int sched_setaffinity(int pid, unsigned long cpusetsize, const void *mask);
/* glibc: return freed heap memory to the kernel. */
int malloc_trim(unsigned long pad);

#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
/* An interface's MTU through SIOCGIFMTU on `fd` (any socket of the interface's namespace); -1 and
 * errno on failure. Here because ioctl is variadic, which Swift does not import. */
static inline int gw_interface_mtu(int fd, const char *name)
{
	struct ifreq request;

	memset(&request, 0, sizeof(request));
	strncpy(request.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFMTU, &request) < 0)
		return -1;
	return request.ifr_mtu;
}

#include <net/if_arp.h>
/* The interface's hardware address through SIOCGIFHWADDR: its type (ARPHRD_ETHER for Ethernet, veth
 * included) and, into `address`, its first 6 bytes; the type, or -1 and errno. */
static inline int gw_interface_hardware_address(int fd, const char *name, unsigned char *address)
{
	struct ifreq request;

	memset(&request, 0, sizeof(request));
	strncpy(request.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFHWADDR, &request) < 0)
		return -1;
	memcpy(address, request.ifr_hwaddr.sa_data, 6);
	return request.ifr_hwaddr.sa_family;
}

#include <linux/ethtool.h>
#include <linux/sockios.h>
/* The name of the interface's driver ("veth", "virtio_net", "mlx5_core") through ETHTOOL_GDRVINFO,
 * copied into `driver` (NUL-terminated); 0, or -1 and errno. */
static inline int gw_interface_driver(int fd, const char *name, char *driver, unsigned long size)
{
	struct ethtool_drvinfo info;
	struct ifreq request;

	if (size == 0)
		return -1;
	memset(&info, 0, sizeof(info));
	memset(&request, 0, sizeof(request));
	info.cmd = ETHTOOL_GDRVINFO;
	strncpy(request.ifr_name, name, IFNAMSIZ - 1);
	request.ifr_data = (char *)&info;
	if (ioctl(fd, SIOCETHTOOL, &request) < 0)
		return -1;
	strncpy(driver, info.driver, size - 1);
	driver[size - 1] = 0;
	return 0;
}
#endif
