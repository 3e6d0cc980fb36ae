"""The training engine: one run, its stages, training loop and evaluation; it reports through events."""
