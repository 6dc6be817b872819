"""The webhook receiver (a surface): the HTTP app and the ingest process it supervises."""
