#ifndef GATEWARDEN_CLIBBPF_SHIM_H
#define GATEWARDEN_CLIBBPF_SHIM_H
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* A libbpf message formatted whole into memory the caller frees, or NULL. Swift cannot copy a
 * va_list to measure a message before formatting it; the verifier's log is one message of any length. */
static inline char *gatewarden_format_message(const char *format, va_list arguments)
{
	va_list measured;
	va_copy(measured, arguments);
	int length = vsnprintf(NULL, 0, format, measured);
	va_end(measured);
	if (length < 0)
		return NULL;
	char *text = malloc((size_t)length + 1);
	if (text)
		vsnprintf(text, (size_t)length + 1, format, arguments);
	return text;
}
#endif
