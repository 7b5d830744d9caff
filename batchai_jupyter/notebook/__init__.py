"""The notebook surface: %batchai_* magics, the RunDetails widget and progress bars.

Imported only by kernels: jobs, nodes and the engine never import this package.
"""
