"""The scripts in scripts/: shellcheck-clean, strict, and doing what they say.

No container engine, cluster or VM exists here, so the behaviour tests put stand-ins for
docker, nerdctl, kind, kubectl, curl and python first on PATH. Each stand-in records how
it was called; the tests read that record to see which commands a user's machine would
have run, in which order, and that running a script twice is safe.
"""

import base64
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"
DEPLOYMENTS_ALL = "deployment.apps/component-server deployment.apps/stepflow-load-balancer deployment.apps/stepflow-server"


def shell_scripts() -> list[Path]:
    """Every shell script in scripts/ (ours and the other services' alike)."""
    found = []
    for path in sorted(SCRIPTS.iterdir()):
        if path.is_file():
            first = path.read_text(errors="replace").split("\n", 1)[0]
            if path.suffix == ".sh" or (("bash" in first or first.endswith("/sh")) and first.startswith("#!")):
                found.append(path)
    return found


def test_shellcheck_is_clean(shellcheck):
    scripts = shell_scripts()
    assert len(scripts) >= 9
    result = subprocess.run([shellcheck, "-x", *map(str, scripts)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", [p for p in shell_scripts() if p.name != "lib.sh"], ids=lambda p: p.name)
def test_scripts_are_strict_and_executable(script):
    assert "\nset -euo pipefail\n" in script.read_text(), f"{script.name} lacks set -euo pipefail"
    assert os.access(script, os.X_OK), f"{script.name} is not executable"


# --- stand-ins -----------------------------------------------------------------------

STAND_IN = r"""#!/usr/bin/env bash
# Records "NAME ARGS..." in $FAKE_LOG, then behaves just enough like NAME.
name="$(basename "$0")"
printf '%s\n' "$name $*" >>"$FAKE_LOG"
case "$name" in
  docker)
    if [ "${1:-}" = info ] && [ -n "${FAKE_DOCKER_DOWN:-}" ]; then exit 1; fi ;;
  kind)
    if [ "$*" = "get clusters" ]; then printf '%s\n' ${FAKE_KIND_CLUSTERS:-}; fi ;;
  kubectl)
    case " $* " in
      *" port-forward "*)
        touch "$FAKE_STATE/forwarding"
        echo "$$ $*" >>"$FAKE_STATE/forwards"
        exec sleep 120 ;;
      *" get pods "*stepflow-load-balancer*) printf '%s\n' pod/stepflow-load-balancer-1 pod/stepflow-load-balancer-2 ;;
      *" get pods "*component-server*) printf '%s\n' pod/component-server-1 pod/component-server-2 pod/component-server-3 ;;
      *" get deployments "*) printf '%s\n' ${FAKE_DEPLOYMENTS:-} ;;
      *" get secret "*)
        if [ -n "${FAKE_SECRET:-}" ]; then printf '%s' "$FAKE_SECRET"; else echo "NotFound" >&2; exit 1; fi ;;
      *" create secret "*) printf 'apiVersion: v1\nkind: Secret\n' ;;
      *" config current-context "*) echo fake-context ;;
      *" apply -f - "*) cat >/dev/null ;;
    esac ;;
  curl)
    # The runtime "answers" once a port-forward has started.
    [ -e "$FAKE_STATE/forwarding" ] || exit 7 ;;
  python)
    if [ "$*" = "-c import local_fleet.demo" ] && [ -n "${FAKE_NO_DEMO:-}" ]; then exit 1; fi
    case "$*" in "-m local_fleet.demo "*)
      printf '%s' "${STEPFLOW_API_TOKEN:-}" >"$FAKE_STATE/demo-token"
      echo "demo summary: 4 parts passed" ;;
    esac ;;
esac
exit 0
"""


class Machine:
    """A user's machine, as far as the scripts can tell: stand-in tools and a log."""

    def __init__(self, tmp_path: Path, tools: list[str]):
        self.bin = tmp_path / "bin"
        self.state = tmp_path / "state"
        self.bin.mkdir()
        self.state.mkdir()
        self.log = tmp_path / "calls.log"
        self.log.touch()
        stand_in = tmp_path / "stand-in"
        stand_in.write_text(STAND_IN)
        stand_in.chmod(0o755)
        for tool in tools:
            (self.bin / tool).symlink_to(stand_in)
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(tmp_path / "home"),
            "TMPDIR": str(self.state),
            "PYTHON": str(self.bin / "python"),
            "FAKE_LOG": str(self.log),
            "FAKE_STATE": str(self.state),
        }

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SCRIPTS / script), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",  # the scripts must not depend on where they are run from
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def forget_calls(self) -> None:
        self.log.write_text("")

    def stop_port_forward(self) -> None:
        for pidfile in self.state.glob("stepflow-port-forward-*.pid"):
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


@pytest.fixture
def machine(tmp_path):
    machine = Machine(tmp_path, ["docker", "kind", "kubectl", "curl", "python"])
    yield machine
    machine.stop_port_forward()


def assert_in_order(calls: list[str], expected: list[str]) -> None:
    """Each expected call happened, in this order (other calls may come between)."""
    position = 0
    for call in expected:
        try:
            position = calls.index(call, position) + 1
        except ValueError:
            pytest.fail(f"{call!r} was not called (after position {position}); calls were:\n" + "\n".join(calls))


IMAGES = ["stepflow-runtime", "stepflow-proxy", "stepflow-component-server"]
DOCKERFILES = ["docker/runtime.Dockerfile", "docker/proxy.Dockerfile", "docker/component-server.Dockerfile"]
KIND_KUBECTL = "kubectl --context kind-stepflow"
# The demo gets the runtime and, through temporary port-forwards, every proxy's and pod's
# metrics (the stand-in cluster has 2 proxies and 3 pods).
DEMO_CALL = "python -m local_fleet.demo --runtime-url http://localhost:7840 " + " ".join(
    [f"--proxy-metrics http://localhost:{port}/metrics" for port in (19090, 19091)]
    + [f"--pod-metrics http://localhost:{port}/metrics" for port in (19092, 19093, 19094)]
)


def test_kind_up_runs_the_whole_flow(machine):
    result = machine.run("kind-up.sh")
    assert result.returncode == 0, result.stderr
    refs = [f"localhost:5000/{image}:latest" for image in IMAGES]
    assert_in_order(
        machine.calls(),
        ["kind create cluster --name stepflow --wait 120s"]
        + [f"docker build -f {dockerfile} -t {ref} ." for dockerfile, ref in zip(DOCKERFILES, refs, strict=True)]
        + [f"kind load docker-image --name stepflow {' '.join(refs)}"]
        + [f"{KIND_KUBECTL} apply -k {REPO_ROOT}/k8s/overlays/kind"]
        + [
            f"{KIND_KUBECTL} -n stepflow-demo rollout status deployment/{name} --timeout=180s"
            for name in ("component-server", "stepflow-load-balancer", "stepflow-server")
        ]
        + [f"{KIND_KUBECTL} -n stepflow-demo port-forward svc/stepflow-server 7840:7840", DEMO_CALL],
    )
    # The metrics port-forwards start in the background together, so in no fixed order; all before the demo.
    calls = machine.calls()
    demo_at = calls.index(DEMO_CALL)
    for forward in ["pod/stepflow-load-balancer-1 19090:9090", "pod/component-server-3 19094:9090"]:
        assert f"{KIND_KUBECTL} -n stepflow-demo port-forward {forward}" in calls[:demo_at], forward
    # Fresh Deployments need no restart.
    assert not [call for call in machine.calls() if "rollout restart" in call]
    # It says what it does, and the demo's summary reaches the user.
    assert "+ docker build -f docker/runtime.Dockerfile" in result.stderr
    assert "demo summary: 4 parts passed" in result.stdout


def test_kind_up_twice_reuses_the_cluster_and_restarts_onto_new_images(machine):
    assert machine.run("kind-up.sh").returncode == 0
    machine.forget_calls()

    result = machine.run("kind-up.sh", FAKE_KIND_CLUSTERS="other stepflow", FAKE_DEPLOYMENTS=DEPLOYMENTS_ALL)

    assert result.returncode == 0, result.stderr
    calls = machine.calls()
    assert not [call for call in calls if call.startswith("kind create")]
    assert "kind cluster stepflow already exists" in result.stderr
    for name in ("component-server", "stepflow-load-balancer", "stepflow-server"):
        assert f"{KIND_KUBECTL} -n stepflow-demo rollout restart deployment/{name}" in calls
    # The runtime's port-forward of the first run still answers: no second one.
    assert not [call for call in calls if " port-forward svc/" in call]
    assert DEMO_CALL in calls


def test_kind_up_stops_when_docker_is_not_running(machine):
    result = machine.run("kind-up.sh", FAKE_DOCKER_DOWN="1")
    assert result.returncode != 0
    assert "Docker is installed but not running" in result.stderr
    assert not [call for call in machine.calls() if call.startswith("kind create")]


def test_deploy_stores_the_token_without_printing_it(machine):
    token = "s3cret-t0ken"
    result = machine.run("deploy.sh", "local", STEPFLOW_API_TOKEN=token, FAKE_DEPLOYMENTS=DEPLOYMENTS_ALL)
    assert result.returncode == 0, result.stderr
    assert token not in result.stdout + result.stderr
    calls = machine.calls()
    assert_in_order(
        calls,
        [
            f"kubectl apply -f {REPO_ROOT}/k8s/base/namespace.yaml",
            f"kubectl -n stepflow-demo create secret generic stepflow-api-token --from-literal=token={token} --dry-run=client -o yaml",
            f"kubectl apply -k {REPO_ROOT}/k8s/overlays/local",
            # The runtime reads the token at start: only it restarts.
            "kubectl -n stepflow-demo rollout restart deployment/stepflow-server",
        ],
    )
    assert len([call for call in calls if "rollout restart" in call]) == 1


def test_deploy_leaves_an_unchanged_token_alone(machine):
    token = "s3cret-t0ken"
    stored = base64.b64encode(token.encode()).decode()
    result = machine.run("deploy.sh", "local", STEPFLOW_API_TOKEN=token, FAKE_SECRET=stored, FAKE_DEPLOYMENTS=DEPLOYMENTS_ALL)
    assert result.returncode == 0, result.stderr
    assert not [call for call in machine.calls() if "create secret" in call or "rollout restart" in call]


def test_deploy_rejects_a_directory_without_kustomization(machine, tmp_path):
    result = machine.run("deploy.sh", str(tmp_path))
    assert result.returncode != 0
    assert "no kustomization.yaml" in result.stderr
    assert not [call for call in machine.calls() if " apply " in call]


def test_build_with_nerdctl_pushes_to_the_plain_http_local_registry(tmp_path):
    machine = Machine(tmp_path, ["nerdctl"])
    result = machine.run("build-images.sh", "--push", ENGINE="nerdctl")
    assert result.returncode == 0, result.stderr
    refs = [f"localhost:5000/{image}:latest" for image in IMAGES]
    assert_in_order(
        machine.calls(),
        [f"nerdctl build -f {dockerfile} -t {ref} ." for dockerfile, ref in zip(DOCKERFILES, refs, strict=True)]
        + [f"nerdctl push --insecure-registry {ref}" for ref in refs],
    )


def test_build_honours_registry_and_tag(tmp_path):
    machine = Machine(tmp_path, ["docker"])
    result = machine.run("build-images.sh", REGISTRY="registry.example.com/team", TAG="v1", PUSH="1")
    assert result.returncode == 0, result.stderr
    assert "docker build -f docker/proxy.Dockerfile -t registry.example.com/team/stepflow-proxy:v1 ." in machine.calls()
    assert "docker push registry.example.com/team/stepflow-proxy:v1" in machine.calls()


def test_build_without_any_engine_says_what_to_do(tmp_path):
    if any(Path(d, tool).exists() for d in ("/usr/bin", "/bin") for tool in ("nerdctl", "limactl")):
        pytest.skip("this machine has a real nerdctl or limactl on /usr/bin")
    machine = Machine(tmp_path, ["docker"])
    result = machine.run("build-images.sh", FAKE_DOCKER_DOWN="1")
    assert result.returncode != 0
    assert "no container engine" in result.stderr
    assert not [call for call in machine.calls() if " build " in f" {call} "]


def test_port_forward_background_then_stop(machine):
    started = machine.run("port-forward.sh", "--background")
    assert started.returncode == 0, started.stderr
    assert "the runtime answers at http://localhost:7840" in started.stderr
    pid = int(next(machine.state.glob("stepflow-port-forward-7840.pid")).read_text())
    os.kill(pid, 0)  # running

    again = machine.run("port-forward.sh", "--background")
    assert "already answers" in again.stderr
    assert len([call for call in machine.calls() if " port-forward " in call]) == 1

    stopped = machine.run("port-forward.sh", "--stop")
    assert stopped.returncode == 0
    assert "port-forward stopped" in stopped.stderr
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the process may take a moment to go
            os.kill(pid, 0)
            subprocess.run(["sleep", "0.1"])
    assert machine.run("port-forward.sh", "--stop").returncode == 0


def test_cluster_demo_passes_arguments_through(machine):
    result = machine.run("cluster-demo.sh", "--only", "simple")
    assert result.returncode == 0, result.stderr
    assert f"{DEMO_CALL} --only simple" in machine.calls()


def test_cluster_demo_stops_its_metrics_forwards(machine):
    result = machine.run("cluster-demo.sh")
    assert result.returncode == 0, result.stderr
    forwards = [line.split(" ", 1) for line in (machine.state / "forwards").read_text().splitlines()]
    metrics_pids = [int(pid) for pid, call in forwards if " pod/" in f" {call}"]
    assert len(metrics_pids) == 5
    for pid in metrics_pids:
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower():
                break
            subprocess.run(["sleep", "0.1"])
        else:
            pytest.fail(f"metrics port-forward {pid} still runs after the demo")
    # The runtime's forward stays, for the next run and for the user.
    runtime_pid = int((machine.state / "stepflow-port-forward-7840.pid").read_text())
    os.kill(runtime_pid, 0)


def test_cluster_demo_needs_the_project_installed(machine):
    result = machine.run("cluster-demo.sh", FAKE_NO_DEMO="1")
    assert result.returncode != 0
    assert "pip install -e ." in result.stderr
    assert not [call for call in machine.calls() if " port-forward " in call]


def test_cluster_demo_uses_the_token_from_the_secret(machine):
    token = "from-the-cluster"
    result = machine.run("cluster-demo.sh", FAKE_SECRET=base64.b64encode(token.encode()).decode())
    assert result.returncode == 0, result.stderr
    assert "using the bearer token from Secret stepflow-api-token" in result.stderr
    assert (machine.state / "demo-token").read_text() == token
    assert token not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "script", ["build-images.sh", "push-images.sh", "deploy.sh", "port-forward.sh", "cluster-demo.sh", "lima-up.sh", "lima-demo.sh", "kind-up.sh"]
)
def test_help_describes_usage(machine, script):
    result = machine.run(script, "--help")
    assert result.returncode == 0
    assert f"Usage: scripts/{script}" in result.stdout
    assert "set -euo" not in result.stdout and not result.stdout.startswith("#")
    assert machine.calls() == []  # --help runs nothing
