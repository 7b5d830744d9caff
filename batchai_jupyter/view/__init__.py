"""The UI-free view layer: log tails, metric series, run rows, summaries and one Table.

The widget, the magics, the CLI and the lab server all read runs through it; nothing here
imports IPython or ipywidgets.
"""
