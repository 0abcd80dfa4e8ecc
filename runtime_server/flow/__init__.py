"""Flows as data: parsing, expressions, validation, overrides. Pure code, no I/O."""
