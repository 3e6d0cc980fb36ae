"""Training paradigms: specialized, joint, continual and continual with rehearsal."""
