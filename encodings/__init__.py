"""How facts become constraints: feature and model catalog, Linux's bug rules, KVM provisioning."""
