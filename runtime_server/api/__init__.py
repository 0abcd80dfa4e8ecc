"""The REST API under /api/v1 (rest-api.md): a compatible superset of upstream 0.9's."""
