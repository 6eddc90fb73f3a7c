"""The central aggregator: ingest, store, API."""
