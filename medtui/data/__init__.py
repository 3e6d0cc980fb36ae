"""Tasks: the registry and the loaders (synthetic, MedMNIST, user files)."""
