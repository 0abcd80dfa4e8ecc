"""Logging, trace context and metric helpers shared by the three services (no wire formats here)."""
