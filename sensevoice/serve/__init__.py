"""HTTP service for SenseVoiceSmall (``sensevoice serve``): OpenAI-compatible and api.py-compatible routes,
cross-request dynamic batching on one model thread, Prometheus metrics and a browser page.

Modules: ``batcher`` (queue, grouping, worker thread over sensevoice.pipeline's ``Transcriber``), ``fields``
(request form and stream fields, validated; the API key), ``formats`` (response bodies), ``metrics`` (Prometheus
text), ``app`` (FastAPI routes, limits, errors), ``guard`` (connections bounded in time and number), ``stream`` and ``websocket`` (live transcription), ``command``
(CLI options and startup).
"""

from sensevoice.serve.command import DESCRIPTION, add_arguments, main, run

__all__ = ["DESCRIPTION", "add_arguments", "main", "run"]
