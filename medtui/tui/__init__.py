"""The Textual app (``medtui``): screens in ``screens/``, widgets in ``widgets/``; never imports torch."""
