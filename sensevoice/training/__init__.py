"""Training (a wing beside the library): the trainer (``train``), the recipe's helpers (``recipe``), tokenizer
training (``tokenizer``), figures (``plots``) and the synthetic corpus generator (``data``). They use the library;
the library never imports them."""
