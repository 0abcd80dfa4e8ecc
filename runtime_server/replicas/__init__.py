"""Replicas of the runtime on one database: leases, failover (docs/durable-runs.md, "Replicas")."""
