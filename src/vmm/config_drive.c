/* A drive of a configuration found by its name (see config.h). */
#include "vmm/config.h"

#include <stdio.h>
#include <string.h>

int config_drive_index(const struct vmm_config *c, const char *id)
{
	char place[16];

	for (unsigned int i = 0; i < c->ndisks; i++)
		if (!strcmp(c->disks[i].id, id))
			return (int)i;
	for (unsigned int i = 0; i < c->ndisks; i++) {
		snprintf(place, sizeof(place), "disk%u", i);
		if (!c->disks[i].id[0] && !strcmp(id, place))
			return (int)i;
	}
	return -1;
}
