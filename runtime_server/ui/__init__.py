"""The run inspector: a browser UI served by the runtime at ``/ui/`` (docs/ui.md).

Plain HTML, CSS and JavaScript modules shipped as package data: nothing is fetched from
elsewhere and nothing is built. The pages are an empty shell until the API answers them,
so they are served without the bearer token; every piece of data comes from ``/api/v1``.
"""
