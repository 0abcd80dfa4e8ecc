"""A Stepflow 0.9 compatible component server: the SDK and the HTTP pod that hosts it.

server = ComponentServer()

@server.component
def double(input: ValueInput) -> Result: ...

serve(server, parse_settings())
"""

from component_server.callbacks import CallbackError, CallbackLimitExceeded, CallbackTimeout
from component_server.context import Context
from component_server.registry import ComponentServer
from component_server.serve import serve
from component_server.settings import Settings, parse_settings

__all__ = ["CallbackError", "CallbackLimitExceeded", "CallbackTimeout", "ComponentServer", "Context", "Settings", "parse_settings", "serve"]
