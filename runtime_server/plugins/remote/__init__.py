"""Client side of the Stepflow wire protocol, in pieces the ``stepflow`` plugin composes.

``settings`` (deadlines and budgets), ``urls`` (which proxy URL a call goes to), ``answers``
(classifying what a component server sent back) and ``deadlines`` (which executions are past a
limit) are pure; ``callbacks`` answers a pod's requests with the run's callbacks; ``transport``
is the plugin's HTTP/1.1 client on asyncio protocols and httptools (httpx only for https and
for transports handed in). Backoff between tries is ``runtime_server.retry``'s.
"""
