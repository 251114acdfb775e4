/* The API's life: set-up from the command line, serving, and the switch to "started". */
#include "api/api.h"
#include "api/http.h"
#include "api/router.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_die(const char *s)
{
	char *c = s ? strdup(s) : NULL;

	if (s && !c)
		die("out of memory");
	return c;
}

void api_init(struct api *a, struct loop *loop, const struct vmm_config *cfg, api_start_fn start)
{
	memset(a, 0, sizeof(*a));
	a->loop = loop;
	a->cfg = *cfg;
	a->start = start;
	a->metrics_timer = -1;
	/* The API frees and replaces these strings, so it owns copies of them. */
	a->cfg.kernel = dup_or_die(cfg->kernel);
	a->cfg.initrd = dup_or_die(cfg->initrd);
	a->boot_args = cfg->vm_flags ? dup_or_die(cfg->cmdline) : NULL;
	for (unsigned int i = 0; i < a->cfg.ndisks; i++)
		a->cfg.disks[i].path = dup_or_die(cfg->disks[i].path);
}

int api_serve(struct api *a, const char *path, char *err, size_t errlen)
{
	return http_server_create(&a->srv, a->loop, path, api_handle, a, err, errlen);
}

void api_started(struct api *a, struct vm *vm)
{
	a->vm = vm;
	a->started = true;
}
