"""HTTP service for SenseVoiceSmall (``sensevoice serve``): OpenAI-compatible and api.py-compatible routes,
cross-request dynamic batching on one model thread, Prometheus metrics and a browser page.

Modules: ``engine`` (decoded uploads -> file results; the ``Transcriber`` seam), ``batcher`` (queue, grouping,
worker thread), ``fields`` (request form validation), ``formats`` (response bodies), ``metrics`` (Prometheus
text), ``app`` (FastAPI routes, limits, errors), ``guard`` (connections bounded in time and number), ``command``
(CLI options and startup).
"""

from sensevoice.serve.command import DESCRIPTION, add_arguments, main, run

__all__ = ["DESCRIPTION", "add_arguments", "main", "run"]
