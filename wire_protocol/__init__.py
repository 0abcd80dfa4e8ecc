"""Wire-level definitions shared by the runtime, the proxy and the component servers.

This package is the only place that knows the Stepflow 0.9 wire format: JSON-RPC
envelopes and method params (``jsonrpc``, ``messages``), header names and content
types (``headers``), SSE framing (``sse``) and request/response correlation
(``correlation``). It does no I/O, so every piece is tested byte by byte.
"""
