"""Client side of the Stepflow wire protocol, in pieces the ``stepflow`` plugin composes.

``settings`` (deadlines and budgets), ``retry`` (backoff), ``answers`` (classifying what a
component server sent back), ``callbacks`` (answering a pod's requests), ``deadlines`` (which
executions are past a limit) are pure;
``transport`` is the HTTP transport under the plugin's one pooled httpx client.
"""
