"""Operational tools that exercise a running stack from outside (the soak test)."""
