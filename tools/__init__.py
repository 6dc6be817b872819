"""Maintenance scripts for the repository (not part of the bizchat package)."""
