"""The loopback DNS server: pure answers, then a real resolver over UDP."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import dns.resolver
import pytest

from local_fleet.dns_server import answer, write_records
from tests.support.processes import python_process

NAME = "component-server.stepflow-demo.svc.cluster.local"


def addresses_in(reply: bytes) -> list[str]:
    message = dns.message.from_wire(reply)
    return sorted(item.address for rrset in message.answer for item in rrset)


@pytest.mark.parametrize(
    ("records", "question", "expected_rcode", "expected"),
    [
        ({NAME: ["127.0.0.11", "127.0.0.12"]}, NAME, dns.rcode.NOERROR, ["127.0.0.11", "127.0.0.12"]),
        ({NAME + ".": ["127.0.0.11"]}, NAME.upper(), dns.rcode.NOERROR, ["127.0.0.11"]),
        ({NAME: []}, NAME, dns.rcode.NOERROR, []),
        ({}, NAME, dns.rcode.NXDOMAIN, []),
    ],
)
def test_answers_a_records_from_the_table(records: dict, question: str, expected_rcode: int, expected: list[str]) -> None:
    table = {name.lower().rstrip(".") + ".": ips for name, ips in records.items()}
    reply = answer(dns.message.make_query(question, "A").to_wire(), table)
    assert reply is not None
    assert dns.message.from_wire(reply).rcode() == expected_rcode
    assert addresses_in(reply) == expected


def test_garbage_datagram_gets_no_answer() -> None:
    assert answer(b"\x00\x01garbage", {}) is None


def test_resolver_sees_records_change_without_restart(tmp_path: Path) -> None:
    records = tmp_path / "records.json"
    write_records(records, {NAME: ["127.0.0.11"]})
    server = python_process("dns", ["-m", "local_fleet.dns_server", "--listen", "127.0.0.1:15354", "--records", str(records)], tmp_path).start()
    try:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], 15354, 5.0
        assert sorted(a.address for a in resolver.resolve(NAME, "A")) == ["127.0.0.11"]
        write_records(records, {NAME: ["127.0.0.11", "127.0.0.12", "127.0.0.13"]})
        assert sorted(a.address for a in resolver.resolve(NAME, "A")) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
    finally:
        server.stop()
