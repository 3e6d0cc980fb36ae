"""medtui: an experiment manager for continual learning of CLIP models on medical imaging.

The package is layered (see the README): ``cli``/``tui`` on top, then ``jobs``,
``store``, ``metrics``, ``engine``, ``paradigms``, ``models`` and ``data``.
Importing :mod:`medtui` itself is cheap and never imports torch.
"""

__version__ = "0.1.0"
