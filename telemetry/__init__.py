"""Logging and trace context shared by the three services (no wire formats here)."""
