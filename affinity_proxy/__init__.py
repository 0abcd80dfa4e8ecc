"""The affinity proxy: between the runtime and the component-server pods.

Discovers pods through DNS (a headless service) and their ``/health`` instance ids,
sends new requests round-robin over active pods, pins requests carrying
``Stepflow-Instance-Id`` to that pod and nowhere else, and streams SSE unbuffered.
Pure cores (``membership``, ``routing``, ``http1``, ``answers``, ``instance_ids``, ``health``) do no I/O;
``discovery``, ``upstream``, ``pipeline`` and ``client`` are the asyncio shells.
"""
