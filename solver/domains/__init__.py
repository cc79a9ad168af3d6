"""Migration domains: the hosts a VM may reach, deduplicated by host kind."""
