"""``naive``: plain sequential fine-tuning, the lower bound every method is compared with."""

from __future__ import annotations

from medtui.methods import register_method
from medtui.methods.base import Method


@register_method("naive")
class Naive(Method):
    """Plain fine-tuning on each task in turn: cross-entropy only, nothing protects earlier tasks."""

    paper = "sequential fine-tuning (the baseline of every continual-learning paper)"
