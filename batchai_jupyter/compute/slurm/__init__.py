"""The slurm backend: one sbatch allocation per run, state from one batched squeue watcher."""
from .backend import SlurmCompute

__all__ = ["SlurmCompute"]
