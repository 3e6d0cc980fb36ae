"""The SQLite run store (sqlite-utils): runs, evaluations, metrics, steps, events, buffer, checkpoints."""
