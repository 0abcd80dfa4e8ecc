"""Plugins execute components: built-ins in process, `stepflow` ones over HTTP."""
