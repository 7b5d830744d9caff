"""The ssh backend: a pool of hosts reached with paramiko, host keys checked against known_hosts."""
from .backend import SSHCompute

__all__ = ["SSHCompute"]
