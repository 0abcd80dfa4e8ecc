"""The throwaway PostgreSQL server for tests: the local fleet's (local_fleet/postgres.py), reused."""

from local_fleet.postgres import PostgresServer, find_binaries, free_port, process_running, unavailable_reason

__all__ = ["PostgresServer", "find_binaries", "free_port", "process_running", "unavailable_reason"]
