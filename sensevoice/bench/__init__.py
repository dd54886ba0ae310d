"""Measuring tools (a wing beside the library): speed of the backends (``speed``, ``sensevoice bench``), long
audio (``long``), the service under load (``loadtest``), accuracy (``evaluate``) and agreement of the fast paths
with fp32 (``agreement``). They use the library; the library never imports them."""
