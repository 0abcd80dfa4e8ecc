"""Real processes on real sockets for tests: the local fleet's process handling, reused."""

from local_fleet.processes import REPO_ROOT, ManagedProcess, python_process

__all__ = ["REPO_ROOT", "ManagedProcess", "python_process"]
