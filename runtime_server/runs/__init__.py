"""Run records, their event journal, and the stores that keep them."""
