"""Ingest: what arrives from outside (webhook bodies, the spool, chat exports) into the store."""
