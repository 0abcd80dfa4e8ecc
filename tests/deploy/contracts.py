"""The contract in docs/architecture.md, read from the document itself.

The command-line table there is what the Dockerfiles, the Kubernetes manifests and the
local fleet must all run; the Kubernetes-names sentence fixes Services and ports.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

# Rows of the command table, by their first column.
SERVICE_ROWS = {"runtime": "runtime", "proxy": "affinity proxy", "component-server": "component pod"}


@dataclass
class CommandLine:
    """One documented command: `python -m MODULE --flag VALUE [--optional VALUE]`."""

    module: str
    required: list[str]
    optional: list[str]
    health_path: str
    text: str = field(repr=False)

    def problems(self, argv: list[str]) -> list[str]:
        """What is wrong with `argv` as an instance of this command line."""
        if argv[:3] != ["python", "-m", self.module]:
            return [f"{argv[:3]} does not start the documented `python -m {self.module}`"]
        problems = []
        args = argv[3:]
        given = []
        i = 0
        while i < len(args):
            flag = args[i]
            if flag not in self.required + self.optional:
                problems.append(f"{flag!r} is not in the documented command `{self.text}`")
                i += 1 if i + 1 < len(args) and args[i + 1].startswith("--") else 2
                continue
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                problems.append(f"{flag} has no value")
            given.append(flag)
            i += 2
        for flag in self.required:
            if flag not in given:
                problems.append(f"required {flag} is missing (documented: `{self.text}`)")
        return problems


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def command_lines() -> dict[str, CommandLine]:
    """service ("runtime", "proxy", "component-server") -> its documented command line."""
    table = _section(ARCHITECTURE.read_text(), "## Command lines")
    found = {}
    for service, row_name in SERVICE_ROWS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {row_name} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        command = cells[1].strip("`")
        health = re.search(r"health `GET (\S+)`", cells[3])
        words = command.split()
        optional = re.findall(r"\[(--[\w-]+)", command)
        required = [w for w in words if w.startswith("--") and w not in optional]
        found[service] = CommandLine(
            module=words[2],
            required=required,
            optional=optional,
            health_path=health.group(1) if health else "",
            text=command,
        )
    return found


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value after `flag` in argv, or None."""
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def listen_port(service: str, argv: list[str]) -> int:
    """The port the service's main listener binds, from its command line."""
    value = flag_value(argv, "--listen" if service == "proxy" else "--port")
    assert value is not None, f"the {service} command line names no listen port: {argv}"
    return int(value.rsplit(":", 1)[-1])


def kubernetes_names() -> dict[str, str]:
    """The Kubernetes names sentence: 'runtime' -> 'stepflow-server:7840', 'proxy' ->
    'stepflow-load-balancer:8080', 'headless' -> 'component-server.<ns>.svc...:8080', plus
    'namespace'."""
    text = ARCHITECTURE.read_text()
    sentence = text[text.index("Kubernetes names") :].split("\n\n")[0]

    def named(pattern: str) -> str:
        match = re.search(pattern, sentence)
        assert match is not None, f"docs/architecture.md's Kubernetes names sentence has no {pattern!r}"
        return match.group(1)

    return {
        "namespace": named(r"namespace\s+`([^`]+)`"),
        "runtime": named(r"runtime\s+service\s+`([^`]+)`"),
        "proxy": named(r"proxy\s+service\s+`([^`]+)`"),
        "headless": named(r"headless\s+pod\s+service\s+`([^`]+)`"),
    }
