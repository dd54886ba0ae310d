"""Training (a wing beside the library): the objective (``objective``, the loss ``model.SenseVoiceSmall.forward``
imports lazily: the one import from the library into this wing), the trainer (``train``), the recipe's helpers
(``recipe``), tokenizer training (``tokenizer``), figures (``plots``) and the synthetic corpus generator (``data``).
They use the library; the library imports nothing else of them."""
