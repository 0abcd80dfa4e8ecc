"""The throwaway PostgreSQL server for tests: the local fleet's (local_fleet/postgres.py), reused."""

from local_fleet.postgres import PostgresServer, _running, find_binaries, free_port, unavailable_reason

__all__ = ["PostgresServer", "_running", "find_binaries", "free_port", "unavailable_reason"]
