"""A small authoritative DNS server on loopback that answers a headless service's A records.

It plays cluster DNS for the local fleet and the tests: the proxy resolves the service
name through it exactly as it would in Kubernetes. Records live in a JSON file
(``{"name.": ["127.0.0.11", ...]}``) re-read when it changes, so whoever starts and kills
pods edits one file and the next query sees it.

Run: ``python -m local_fleet.dns_server --listen 127.0.0.1:5353 --records FILE``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from telemetry.logs import configure_logging, log_event

logger = logging.getLogger("local_fleet.dns")

Records = dict[str, list[str]]
TTL_SECONDS = 1


def normalise_name(name: str) -> str:
    return name.lower().rstrip(".") + "."


def answer(query_wire: bytes, records: Records) -> bytes | None:
    """Pure core: the wire answer to one query (None for bytes that are not a DNS query)."""
    try:
        query = dns.message.from_wire(query_wire)
    except Exception:  # noqa: BLE001 - any undecodable datagram is dropped, as real servers do
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if not query.question:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    name = normalise_name(question.name.to_text())
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.A and records[name]:
        response.answer.append(dns.rrset.from_text_list(name, TTL_SECONDS, dns.rdataclass.IN, dns.rdatatype.A, records[name]))
    return response.to_wire()


class RecordsFile:
    """The records, re-read only when the file's modification time changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: int | None = None
        self._records: Records = {}

    def current(self) -> Records:
        try:
            stamp = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            return {}
        if stamp != self._stamp:
            raw = json.loads(self._path.read_text() or "{}")
            self._records = {normalise_name(name): list(addresses) for name, addresses in raw.items()}
            self._stamp = stamp
        return self._records


def write_records(path: Path, records: Records) -> None:
    """Replace the file atomically so the server never reads half a write."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(records))
    os.replace(temporary, path)


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, records: RecordsFile) -> None:
        self._records = records
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a datagram endpoint is always handed a DatagramTransport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(data, self._records.current())
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)


async def serve(host: str, port: int, records_path: Path) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _DnsProtocol(RecordsFile(records_path)), local_addr=(host, port))
    log_event(logger, "dns_listening", address=f"{host}:{port}", records=str(records_path))
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Loopback DNS server for a headless service.")
    parser.add_argument("--listen", default="127.0.0.1:5353", help="HOST:PORT for UDP")
    parser.add_argument("--records", required=True, type=Path, help="JSON file {name: [addresses]}")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    configure_logging("dns")
    try:
        asyncio.run(serve(host, int(port), args.records))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
