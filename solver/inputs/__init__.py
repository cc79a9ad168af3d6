"""Untrusted bytes to typed records: pool files, host fact files, guest CPUs, guests files, the KVM probe.

The only code that reads what an operator (or another machine) wrote."""
