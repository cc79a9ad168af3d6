"""Typed records every stage shares: host facts, guest CPUs, pools and requirements."""
