"""The three Dockerfiles: slim Python base, the project installed with `pip install .`,
a numeric non-root USER, a HEALTHCHECK on the documented health path, and a CMD that is
the documented command line (docs/architecture.md)."""

import fnmatch
import subprocess
import tomllib
from urllib.parse import urlparse

import pytest

from .conftest import REPO_ROOT
from .contracts import command_lines, flag_value, listen_port
from .images import exec_form, healthcheck_command, instructions, last

# Which Dockerfile is which service's image.
DOCKERFILES = {
    "runtime": REPO_ROOT / "docker/runtime.Dockerfile",
    "proxy": REPO_ROOT / "docker/proxy.Dockerfile",
    "component-server": REPO_ROOT / "docker/component-server.Dockerfile",
}
# The user the Kubernetes manifests run as (securityContext.runAsUser).
KUBERNETES_UID = 10001

services = pytest.mark.parametrize("service", DOCKERFILES)


@services
def test_base_image_is_python_3_11_slim(service):
    froms = [i.arguments for i in instructions(DOCKERFILES[service]) if i.keyword == "FROM"]
    assert froms == ["python:3.11-slim"]


@services
def test_the_project_is_installed_with_pip_install_dot(service):
    runs = [i.arguments for i in instructions(DOCKERFILES[service]) if i.keyword == "RUN"]
    assert any(run.endswith("pip install .") for run in runs), runs


@services
def test_runs_as_a_numeric_non_root_user(service):
    user = last(DOCKERFILES[service], "USER")
    assert user is not None, "no USER: the container would run as root"
    uid = user.arguments.split(":")[0]
    # Kubernetes' runAsNonRoot can only verify a numeric user.
    assert uid.isdigit() and int(uid) != 0, f"USER {user.arguments}"
    assert int(uid) == KUBERNETES_UID, "the manifests' runAsUser and the image's USER differ"


@services
def test_cmd_is_the_documented_command_line(service):
    cmd = last(DOCKERFILES[service], "CMD")
    assert cmd is not None
    argv = exec_form(cmd.arguments)
    # The exec form makes python PID 1, so it gets SIGTERM and can drain.
    assert argv is not None, f"CMD {cmd.arguments} is not in exec (JSON array) form"
    assert command_lines()[service].problems(argv) == []
    assert last(DOCKERFILES[service], "ENTRYPOINT") is None, "an ENTRYPOINT would prefix the CMD"


@services
def test_exposed_ports_are_the_ones_the_cmd_listens_on(service):
    argv = exec_form(last(DOCKERFILES[service], "CMD").arguments)
    metrics = flag_value(argv, "--metrics-port") or flag_value(argv, "--metrics-listen").rsplit(":", 1)[1]
    exposed = sorted(int(p) for p in last(DOCKERFILES[service], "EXPOSE").arguments.split())
    assert exposed == sorted([listen_port(service, argv), int(metrics)])


@services
def test_healthcheck_gets_the_documented_health_path(service):
    command = healthcheck_command(DOCKERFILES[service])
    assert command is not None, "no exec-form HEALTHCHECK CMD"
    urls = [word for part in command for word in part.replace("'", " ").split() if word.startswith("http://")]
    assert len(urls) == 1, command
    url = urlparse(urls[0])
    argv = exec_form(last(DOCKERFILES[service], "CMD").arguments)
    assert url.port == listen_port(service, argv)
    assert url.path == command_lines()[service].health_path


def test_the_runtime_image_carries_the_demo_config():
    copies = [i.arguments.split() for i in instructions(DOCKERFILES["runtime"]) if i.keyword == "COPY"]
    argv = exec_form(last(DOCKERFILES["runtime"], "CMD").arguments)
    assert ["config/stepflow-config.yml", flag_value(argv, "--config")] in copies


@services
def test_the_build_context_keeps_what_pip_install_needs(service):
    """The per-Dockerfile .dockerignore must not hide pyproject.toml, a package, or a
    COPY source."""
    ignore = DOCKERFILES[service].with_name(DOCKERFILES[service].name + ".dockerignore")
    patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
    packages = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = [i.arguments.split()[0] for i in instructions(DOCKERFILES[service]) if i.keyword == "COPY"]
    for path in copied:
        assert (REPO_ROOT / path).exists(), f"COPY {path}: no such file"
    for path in ["pyproject.toml"] + [p.rstrip("*") for p in packages] + copied:
        hidden = [p for p in patterns if fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/")]
        assert not hidden, f"{ignore.name} hides {path} ({hidden})"


def test_hadolint_finds_nothing(hadolint):
    result = subprocess.run([hadolint, "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
