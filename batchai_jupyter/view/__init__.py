"""The UI-free view layer: log tails, metric series, run rows, summaries and one Table.

    reader.py   incremental reads of a run (LogTail, MetricsTail, child rows)
    metrics.py  summarize_metrics (Azure ML's shapes) and scalar (step, value) series
    rows.py     row builders for runs, clusters, nodes and files, and each face's columns
    table.py    Table: rows as HTML (notebooks) or aligned text (repr, the CLI)
    render.py   HTML fragments; summary.py the static HTML summary of a run

The widget, the magics, the CLI and the lab server all read runs through it; nothing here
imports IPython or ipywidgets (an import-linter contract holds it).
"""
