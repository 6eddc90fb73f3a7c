"""MQTT -> store, batched and idempotent; acks after commit; once-per-cluster jobs apart.

The pipeline is assembled in central/ingest/pipeline.py; read it first.
"""

from central.ingest.pipeline import Ingest

__all__ = ["Ingest"]
