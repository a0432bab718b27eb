"""Adapter tests, one file per wire format, each against its fake server."""
