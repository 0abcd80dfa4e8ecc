"""The demo pod: ``python -m component_server.demo --host HOST --port PORT``."""

from component_server import parse_settings, serve
from component_server.demo import server

if __name__ == "__main__":
    serve(server, parse_settings(description=__doc__))
