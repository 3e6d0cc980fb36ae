"""Studies: named grids of runs (a base config × axes × seeds × task orders), aggregated as mean ± std.

- :mod:`medtui.study.spec` reads and checks a study TOML;
- :mod:`medtui.study.expand` turns it into cells and runs (axes that do not apply collapse);
- :mod:`medtui.study.store` records a study and its runs and queues them (resuming a re-run);
- :mod:`medtui.study.aggregate` computes per-cell mean ± sample std of every metric and matrix;
- :mod:`medtui.study.export` writes the tables (text, Markdown, LaTeX, CSV).

Nothing here imports torch.
"""
