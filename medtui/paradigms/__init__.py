"""The rehearsal buffer, which composes with any continual method (numpy only, no torch).

Protocols (the stages of a run) are in :mod:`medtui.protocols`; methods (how a continual
stage trains) in :mod:`medtui.methods`.
"""
