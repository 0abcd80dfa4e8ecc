"""The images: which ones scripts/build-images.sh builds, and what their Dockerfiles say."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class BuiltImage:
    name: str  # e.g. stepflow-runtime
    dockerfile: Path
    ref: str  # what build-images.sh tags it, with the default REGISTRY and TAG


def built_images() -> dict[str, BuiltImage]:
    """Asked from scripts/lib.sh itself, the file build-images.sh and push-images.sh use."""
    script = 'source scripts/lib.sh; for i in $IMAGES; do echo "$i $(dockerfile_for "$i") $(image_ref "$i")"; done'
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}  # the defaults, not the caller's REGISTRY/TAG
    out = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    images = {}
    for line in out.stdout.splitlines():
        name, dockerfile, ref = line.split()
        images[name] = BuiltImage(name, REPO_ROOT / dockerfile, ref)
    return images


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, CMD, ...
    arguments: str


def instructions(dockerfile: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, with continuation lines joined and comments dropped."""
    found = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
    return found


def last(dockerfile: Path, keyword: str) -> Instruction | None:
    matching = [i for i in instructions(dockerfile) if i.keyword == keyword]
    return matching[-1] if matching else None


def exec_form(arguments: str) -> list[str] | None:
    """The JSON array of an exec-form CMD/ENTRYPOINT (None for the shell form)."""
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def healthcheck_command(dockerfile: Path) -> list[str] | None:
    """The exec-form command of HEALTHCHECK (its options before CMD skipped)."""
    check = last(dockerfile, "HEALTHCHECK")
    if check is None or " CMD " not in f" {check.arguments} ":
        return None
    return exec_form(check.arguments.split("CMD", 1)[1].strip())
