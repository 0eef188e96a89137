"""Clients of the voice protocol: the simulated caller."""
