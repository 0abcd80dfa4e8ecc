"""Checks of the wiring between rendered Kubernetes objects.

Each `check_*` function takes the objects of one rendered kustomization and returns the
problems it finds, as sentences (an empty list: all is well). The tests run every check
on every kustomization, and also feed them deliberately broken objects to show each
check can fail.
"""

import base64
import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import SplitResult, urlsplit

import yaml

from .contracts import command_lines, flag_value, kubernetes_names, listen_port

# Which Deployment runs which service of docs/architecture.md.
DEPLOYMENTS = {
    "runtime": "stepflow-server",
    "proxy": "stepflow-load-balancer",
    "component-server": "component-server",
}
# The flag that says where each service serves /metrics (docs/architecture.md).
METRICS_FLAGS = {"runtime": "--metrics-port", "proxy": "--metrics-listen", "component-server": "--metrics-port"}


class Fleet:
    """Look-ups over the rendered objects."""

    def __init__(self, objects: list[dict]):
        self.objects = objects

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise AssertionError(f"no {kind} named {name}")

    def workloads(self) -> list[dict]:
        """Deployments and StatefulSets: whatever runs pods."""
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")

    def deployment(self, service: str) -> dict:
        return self.get("Deployment", DEPLOYMENTS[service])

    def container(self, service: str) -> dict:
        return pod_spec(self.deployment(service))["containers"][0]


def pod_spec(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def pod_labels(deployment: dict) -> dict:
    return deployment["spec"]["template"]["metadata"].get("labels", {})


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (plain map or {matchLabels}) selects these labels.
    An empty selector selects everything, as in Kubernetes."""
    if "matchExpressions" in selector:
        raise AssertionError("matchExpressions are not used here; extend selects() if needed")
    # A Service's selector is a plain map; the others wrap it in matchLabels.
    wanted = selector.get("matchLabels", selector)
    return all(labels.get(key) == value for key, value in wanted.items())


def resolve_port(container: dict, port) -> int | None:
    """A port given by number or by name, as the containerPort it means (None if the
    container declares no such port)."""
    for declared in container.get("ports", []):
        if port == declared["containerPort"] or port == declared.get("name"):
            return declared["containerPort"]
    return None


def argv(container: dict) -> list[str]:
    return list(container.get("command", [])) + list(container.get("args", []))


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def service_dns(service: dict, port: int) -> str:
    meta = service["metadata"]
    return f"{meta['name']}.{meta['namespace']}.svc.cluster.local:{port}"


# --- checks -------------------------------------------------------------------------


def check_namespace(objects: list[dict]) -> list[str]:
    namespace = kubernetes_names()["namespace"]
    problems = []
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            if meta["name"] != namespace:
                problems.append(f"Namespace {meta['name']} is not {namespace}")
        elif meta.get("namespace") != namespace:
            problems.append(f"{obj['kind']} {meta['name']} is in namespace {meta.get('namespace')}")
    return problems


def check_services_select_pods(objects: list[dict]) -> list[str]:
    """Every Service selects the pods of exactly one Deployment or StatefulSet, and each
    targetPort is a port those pods' container declares."""
    fleet = Fleet(objects)
    problems = []
    for service in fleet.of_kind("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"].get("selector") or {}
        if not selector:
            problems.append(f"Service {name} has no selector")
            continue
        matched = [d for d in fleet.workloads() if selects(selector, pod_labels(d))]
        if len(matched) != 1:
            names = [d["metadata"]["name"] for d in matched]
            problems.append(f"Service {name} selects the pods of {names or 'no workload'}")
            continue
        container = pod_spec(matched[0])["containers"][0]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if resolve_port(container, target) is None:
                problems.append(f"Service {name} targetPort {target!r} is not a port of {matched[0]['metadata']['name']}'s container")
    return problems


def check_architecture_names(objects: list[dict]) -> list[str]:
    """The Services and ports docs/architecture.md promises exist, and the pod Service is
    headless (DNS answers with pod addresses, which is how the proxies find the pods)."""
    fleet = Fleet(objects)
    names = kubernetes_names()
    problems = []
    expected = {
        "runtime": names["runtime"],
        "proxy": names["proxy"],
        "component-server": names["headless"],
    }
    for service_kind, address in expected.items():
        host, port = host_port(address)
        service_name = host.split(".")[0]
        try:
            service = fleet.get("Service", service_name)
        except AssertionError as missing:
            problems.append(str(missing))
            continue
        if port not in [p["port"] for p in service["spec"]["ports"]]:
            problems.append(f"Service {service_name} does not expose port {port}")
        if not selects(service["spec"].get("selector", {}), pod_labels(fleet.deployment(service_kind))):
            problems.append(f"Service {service_name} does not select the {service_kind} pods")
        if "." in host and service_dns(service, port) != address:
            problems.append(f"{service_dns(service, port)} is not the documented {address}")
    headless = fleet.get("Service", host_port(names["headless"])[0].split(".")[0])
    if headless["spec"].get("clusterIP") != "None":
        problems.append("Service component-server must be headless (clusterIP: None)")
    return problems


def check_commands(objects: list[dict]) -> list[str]:
    """Each container runs the documented command line, its http port is the port that
    command listens on, and its metrics port is the one the command serves metrics on."""
    fleet = Fleet(objects)
    documented = command_lines()
    problems = []
    for service, command in documented.items():
        container = fleet.container(service)
        args = argv(container)
        wrong = command.problems(args)
        if wrong:
            problems += [f"{service}: {p}" for p in wrong]
            continue
        if resolve_port(container, "http") != listen_port(service, args):
            problems.append(f"{service}: containerPort 'http' is not the port in {shlex.join(args)}")
        metrics = flag_value(args, "--metrics-listen") or flag_value(args, "--metrics-port")
        if metrics and resolve_port(container, "metrics") != int(metrics.rsplit(":", 1)[-1]):
            problems.append(f"{service}: containerPort 'metrics' is not the metrics port in {shlex.join(args)}")
    return problems


def check_proxy_upstream(objects: list[dict]) -> list[str]:
    """The proxies' --upstream is the headless Service of the component-server pods."""
    fleet = Fleet(objects)
    upstream = flag_value(argv(fleet.container("proxy")), "--upstream") or ""
    pods = pod_labels(fleet.deployment("component-server"))
    headless = [s for s in fleet.of_kind("Service") if s["spec"].get("clusterIP") == "None" and selects(s["spec"].get("selector", {}), pods)]
    if len(headless) != 1:
        return [f"expected one headless Service for the component-server pods, found {len(headless)}"]
    service = headless[0]
    wanted = [service_dns(service, p["port"]) for p in service["spec"]["ports"]]
    if upstream not in wanted:
        return [f"proxy --upstream {upstream!r} is not the headless Service ({' or '.join(wanted)})"]
    return []


def check_probes(objects: list[dict]) -> list[str]:
    """Readiness and liveness probes GET the documented health path on the http port; a
    liveness probe may instead only connect to the http port (the runtime on a database:
    its health says 503 while the database is away, which a restart would not mend)."""
    fleet = Fleet(objects)
    problems = []
    for service, command in command_lines().items():
        container = fleet.container(service)
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if kind == "livenessProbe" and probe and "tcpSocket" in probe:
                if resolve_port(container, probe["tcpSocket"]["port"]) != resolve_port(container, "http"):
                    problems.append(f"{service}: {kind} does not connect to the http port")
                continue
            if not probe or "httpGet" not in probe:
                problems.append(f"{service}: no HTTP {kind}")
                continue
            get = probe["httpGet"]
            port = resolve_port(container, get["port"])
            if port is None:
                problems.append(f"{service}: {kind} port {get['port']!r} is not a declared containerPort")
            elif port != resolve_port(container, "http"):
                problems.append(f"{service}: {kind} is not on the http port")
            if get.get("path") != command.health_path:
                problems.append(f"{service}: {kind} path {get.get('path')} is not {command.health_path}")
    return problems


def allowed_sources(policy: dict, port: int, target: dict, deployments: list[dict]) -> set[str]:
    """The Deployments (in the policy's namespace) whose pods this NetworkPolicy lets
    reach `port` of the `target` container."""
    allowed = set()
    for rule in policy["spec"].get("ingress", []):
        ports = rule.get("ports")
        if ports and not any(resolve_port(target, p["port"]) == port for p in ports):
            continue
        peers = rule.get("from")
        for deployment in deployments:
            if peers is None or any(
                "namespaceSelector" not in peer and "ipBlock" not in peer and selects(peer.get("podSelector", {}), pod_labels(deployment)) for peer in peers
            ):
                allowed.add(deployment["metadata"]["name"])
    return allowed


def check_network_policy(objects: list[dict]) -> list[str]:
    """Exactly the proxy pods may reach the component-server pods' http port, and exactly
    the runtime pods the proxies' http port; each policy isolates its own pods only."""
    return _isolation_problems(objects, "component-server", "proxy") + _isolation_problems(objects, "proxy", "runtime")


def _isolation_problems(objects: list[dict], service: str, client: str) -> list[str]:
    """One NetworkPolicy selects the pods of `service`, restricts Ingress, and opens their
    http port to the pods of `client` only."""
    fleet = Fleet(objects)
    return only_reachable_by(fleet, fleet.deployment(service), "http", DEPLOYMENTS[client], service)


def only_reachable_by(fleet: Fleet, isolated: dict, port_name: str, client: str, service: str) -> list[str]:
    """One NetworkPolicy selects the pods of the workload `isolated` (called `service` in the
    problems), restricts Ingress, and opens its port `port_name` to the workload `client` only."""
    deployments = fleet.workloads()
    container = pod_spec(isolated)["containers"][0]
    http_port = resolve_port(container, port_name)
    if http_port is None:
        return [f"the {service} container declares no port named {port_name}"]
    policies = [p for p in fleet.of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"], pod_labels(isolated))]
    if len(policies) != 1:
        return [f"expected one NetworkPolicy selecting the {service} pods, found {len(policies)}"]
    policy = policies[0]
    problems = []
    if "Ingress" not in policy["spec"].get("policyTypes", []):
        problems.append(f"the {service} NetworkPolicy does not restrict Ingress")
    others = [d["metadata"]["name"] for d in deployments if d is not isolated and selects(policy["spec"]["podSelector"], pod_labels(d))]
    if others:
        problems.append(f"the {service} NetworkPolicy also isolates {others}")
    allowed = allowed_sources(policy, http_port, container, deployments)
    if allowed != {client}:
        problems.append(f"port {http_port} of the {service} pods is open to {sorted(allowed)}, not just {client}")
    return problems


def runtime_config(objects: list[dict]) -> tuple[dict | None, list[str]]:
    """The runtime's config as mounted from its ConfigMap at the --config path."""
    fleet = Fleet(objects)
    container = fleet.container("runtime")
    path = PurePosixPath(flag_value(argv(container), "--config") or "")
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == str(path.parent)]
    if not mounts:
        return None, [f"nothing is mounted at {path.parent}, where --config {path} points"]
    volume = next(v for v in pod_spec(fleet.deployment("runtime"))["volumes"] if v["name"] == mounts[0]["name"])
    if "configMap" not in volume:
        return None, [f"{path.parent} is not a ConfigMap volume"]
    config_map = fleet.get("ConfigMap", volume["configMap"]["name"])
    if path.name not in config_map.get("data", {}):
        return None, [f"ConfigMap {config_map['metadata']['name']} has no key {path.name}"]
    return yaml.safe_load(config_map["data"][path.name]), []


def check_runtime_config(objects: list[dict]) -> list[str]:
    """The runtime's config sends /python/... to the proxy Service, and /builtin/... and
    everything else to the builtin plugin (config.md §6)."""
    config, problems = runtime_config(objects)
    if problems or config is None:
        return problems or ["the runtime's config file is empty"]
    fleet = Fleet(objects)
    proxy_service = fleet.get("Service", host_port(kubernetes_names()["proxy"])[0])
    proxy_urls = [f"http://{service_dns(proxy_service, p['port'])}" for p in proxy_service["spec"]["ports"]]
    plugins, routes = config.get("plugins", {}), config.get("routes", {})

    def route_plugin(pattern: str) -> dict:
        rules = routes.get(pattern) or [{}]
        return plugins.get(rules[0].get("plugin"), {})

    python = route_plugin("/python/{*component}")
    if python.get("type") != "stepflow" or python.get("url") not in proxy_urls:
        problems.append(f"/python/{{*component}} goes to {python}, not a stepflow plugin at {proxy_urls[0]}")
    for pattern in ("/builtin/{*component}", "/{*component}"):
        if route_plugin(pattern).get("type") != "builtin":
            problems.append(f"{pattern} is not routed to the builtin plugin")
    return problems


def check_pod_security(objects: list[dict]) -> list[str]:
    """Non-root, read-only root filesystem, no capabilities, no privilege escalation,
    RuntimeDefault seccomp (the namespace enforces the 'restricted' standard), and a
    writable emptyDir at /tmp."""
    fleet = Fleet(objects)
    problems = []
    for workload in fleet.workloads():
        service = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        for container in spec["containers"]:
            security = {**pod_security, **container.get("securityContext", {})}
            where = f"{service}/{container['name']}"
            if security.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if security.get("runAsUser") == 0:
                problems.append(f"{where}: runs as uid 0")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities are not dropped (drop: [ALL])")
            if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
                problems.append(f"{where}: no emptyDir at /tmp")
    for namespace in fleet.of_kind("Namespace"):
        if namespace["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            problems.append("the namespace does not enforce the restricted Pod Security Standard")
    return problems


def prestop_sleep(container: dict) -> int:
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return int(command[1]) if command[:1] == ["sleep"] else 0


def env_value(container: dict, name: str) -> str | None:
    for var in container.get("env", []):
        if var["name"] == name:
            return var.get("value")
    return None


RUNTIME_SHUTDOWN_GRACE_SECONDS = 20
"""The runtime's SHUTDOWN_GRACE_SECONDS when it is not set: how long it goes on with its runs after SIGTERM."""


def drain_seconds(service: str, container: dict) -> int:
    """How long the service works on after SIGTERM: a component pod's DRAIN_GRACE_SECONDS, the runtime's shutdown grace."""
    if service == "runtime":
        return int(env_value(container, "SHUTDOWN_GRACE_SECONDS") or RUNTIME_SHUTDOWN_GRACE_SECONDS)
    return int(env_value(container, "DRAIN_GRACE_SECONDS") or 0)


def check_shutdown(objects: list[dict]) -> list[str]:
    """Every pod sleeps in preStop (so it leaves Service endpoints and DNS before it stops
    taking work), and the grace period covers that sleep plus the drain: for component
    pods, DRAIN_GRACE_SECONDS of in-flight executions and pinned callbacks, for the runtime
    SHUTDOWN_GRACE_SECONDS of its runs (then it releases the rest to a peer), during which
    the liveness probe must not give up on them."""
    fleet = Fleet(objects)
    problems = []
    for service in DEPLOYMENTS:
        deployment = fleet.deployment(service)
        container = fleet.container(service)
        sleep = prestop_sleep(container)
        if sleep <= 0:
            problems.append(f"{service}: no preStop sleep")
        drain = drain_seconds(service, container)
        if service == "component-server" and drain <= 0:
            problems.append("component-server: DRAIN_GRACE_SECONDS is not set")
        liveness = container.get("livenessProbe", {})
        window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
        if window <= drain:
            problems.append(f"{service}: the liveness probe would kill a pod {window}s into a {drain}s drain (its /health answers 503 while draining)")
        grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
        if grace <= sleep + drain:
            problems.append(f"{service}: terminationGracePeriodSeconds {grace} does not cover preStop {sleep}s + drain {drain}s")
    return problems


def check_scaling(objects: list[dict]) -> list[str]:
    """Replica counts of the proxies and the component-server pods, and the pods'
    PodDisruptionBudget and HorizontalPodAutoscaler, fit together (the runtime's:
    check_runtime_replicas)."""
    fleet = Fleet(objects)
    problems = []
    replicas = {service: fleet.deployment(service)["spec"].get("replicas", 1) for service in DEPLOYMENTS if service != "runtime"}
    if replicas != {"proxy": 2, "component-server": 3}:
        problems.append(f"replicas are {replicas}")
    pods = pod_labels(fleet.deployment("component-server"))
    budgets = [b for b in fleet.of_kind("PodDisruptionBudget") if selects(b["spec"]["selector"], pods)]
    if len(budgets) != 1:
        problems.append(f"{len(budgets)} PodDisruptionBudgets select the component-server pods")
    elif not 0 < budgets[0]["spec"].get("minAvailable", 0) < replicas["component-server"]:
        problems.append("the PodDisruptionBudget's minAvailable must be at least 1 and leave room for drains")
    scalers = [
        h
        for h in fleet.of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "component-server"}
    ]
    if len(scalers) != 1 or scalers[0]["apiVersion"] != "autoscaling/v2":
        problems.append("expected one autoscaling/v2 HorizontalPodAutoscaler for deployment component-server")
    else:
        spec = scalers[0]["spec"]
        if not spec.get("minReplicas", 1) <= replicas["component-server"] <= spec["maxReplicas"]:
            problems.append("the component-server replicas are outside the autoscaler's range")
        if "cpu" not in fleet.container("component-server").get("resources", {}).get("requests", {}):
            problems.append("CPU-utilization scaling needs a CPU request on the component-server container")
    return problems


def check_resources(objects: list[dict]) -> list[str]:
    fleet = Fleet(objects)
    problems = []
    for workload in fleet.workloads():
        service = workload["metadata"]["name"]
        resources = pod_spec(workload)["containers"][0].get("resources", {})
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind, {}))
            if missing:
                problems.append(f"{service}: no {kind} for {sorted(missing)}")
    return problems


def check_metrics_annotations(objects: list[dict]) -> list[str]:
    """Prometheus finds every pod's metrics port from its annotations, and the process serves metrics there."""
    fleet = Fleet(objects)
    problems = []
    for service in DEPLOYMENTS:
        annotations = fleet.deployment(service)["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            problems.append(f"{service}: no prometheus.io/scrape: 'true'")
        if annotations.get("prometheus.io/path") != "/metrics":
            problems.append(f"{service}: prometheus.io/path is not /metrics")
        port = annotations.get("prometheus.io/port", "")
        if not port.isdigit() or resolve_port(fleet.container(service), "metrics") != int(port):
            problems.append(f"{service}: prometheus.io/port {port!r} is not the metrics containerPort")
        served = flag_value(argv(fleet.container(service)), METRICS_FLAGS[service])
        if served is None or not port.isdigit() or host_port(served if ":" in served else f":{served}")[1] != int(port):
            problems.append(f"{service}: serves metrics at {METRICS_FLAGS[service]} {served}, not on the annotated port {port!r}")
    return problems


def check_runtime_replicas(objects: list[dict]) -> list[str]:
    """The runtime keeping runs in memory is one replica, updated with Recreate. On PostgreSQL it runs
    as replicas (docs/operations.md, "Replicas"): at least two, each with its own orchestrator id (its
    pod's name), recovery not turned off, updated one at a time with the new one ready first, and one
    PodDisruptionBudget that keeps one up during a drain while letting the other go."""
    fleet = Fleet(objects)
    deployment = fleet.deployment("runtime")
    replicas = deployment["spec"].get("replicas", 1)
    strategy = deployment["spec"].get("strategy", {})
    budgets = [b for b in fleet.of_kind("PodDisruptionBudget") if selects(b["spec"]["selector"], pod_labels(deployment))]
    if database(objects) is None:
        problems = [] if replicas == 1 else [f"the in-memory runtime runs {replicas} replicas: each would know only its own runs"]
        if strategy.get("type") != "Recreate":
            problems.append("the single in-memory runtime must update with strategy Recreate")
        return problems + ([f"{len(budgets)} PodDisruptionBudgets select the single runtime"] if budgets else [])
    problems = [] if replicas >= 2 else [f"the runtime on PostgreSQL runs {replicas} replica: nothing takes its runs over when it dies"]
    orchestrator_id = env_var(fleet.container("runtime"), "STEPFLOW_ORCHESTRATOR_ID") or {}
    if orchestrator_id.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append("STEPFLOW_ORCHESTRATOR_ID is not the pod's metadata.name: replicas with one id would each think they own the same runs")
    config, _ = runtime_config(objects)
    if ((config or {}).get("recovery") or {}).get("enabled", True) is not True:
        problems.append("recovery is not enabled: a dead replica's runs would wait for it forever")
    if strategy.get("type") != "RollingUpdate" or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0:
        problems.append("the replicas must update with RollingUpdate and maxUnavailable 0 (one at a time, its successor ready first)")
    if len(budgets) != 1:
        problems.append(f"{len(budgets)} PodDisruptionBudgets select the runtime replicas, not 1")
    elif budgets[0]["spec"].get("minAvailable") != 1:
        problems.append(f"the runtime's PodDisruptionBudget must keep minAvailable 1 of its {replicas} replicas, not {budgets[0]['spec'].get('minAvailable')}")
    return problems


def check_pod_env(objects: list[dict]) -> list[str]:
    """POD_NAME comes from the downward API on component pods; the runtime's bearer token
    comes from the optional Secret stepflow-api-token."""
    fleet = Fleet(objects)
    problems = []
    pod_name = [v for v in fleet.container("component-server").get("env", []) if v["name"] == "POD_NAME"]
    if not pod_name or pod_name[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append("component-server: POD_NAME is not the pod's metadata.name")
    token = [v for v in fleet.container("runtime").get("env", []) if v["name"] == "STEPFLOW_API_TOKEN"]
    ref = token[0].get("valueFrom", {}).get("secretKeyRef", {}) if token else {}
    if ref != {"name": "stepflow-api-token", "key": "token", "optional": True}:
        problems.append(f"runtime: STEPFLOW_API_TOKEN is not the optional Secret stepflow-api-token/token ({ref})")
    return problems


def secrets(fleet: Fleet) -> dict[str, dict[str, str]]:
    """Secret name -> its keys and (decoded) values."""
    found = {}
    for secret in fleet.of_kind("Secret"):
        data = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
        found[secret["metadata"]["name"]] = {**data, **secret.get("stringData", {})}
    return found


def env_var(container: dict, name: str) -> dict | None:
    return next((var for var in container.get("env", []) if var["name"] == name), None)


def secret_ref(container: dict, name: str) -> dict:
    """The secretKeyRef the env var `name` is taken from ({} if it is not)."""
    return (env_var(container, name) or {}).get("valueFrom", {}).get("secretKeyRef", {})


def check_secret_references(objects: list[dict]) -> list[str]:
    """Every env var taken from a Secret that is not optional names a Secret of this
    kustomization and a key that Secret has."""
    fleet = Fleet(objects)
    known = secrets(fleet)
    problems = []
    for workload in fleet.workloads():
        for container in pod_spec(workload)["containers"]:
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if not ref or ref.get("optional"):
                    continue
                where = f"{workload['metadata']['name']}/{container['name']}: {var['name']}"
                if ref["name"] not in known:
                    problems.append(f"{where} comes from Secret {ref['name']}, which is not there")
                elif ref["key"] not in known[ref["name"]]:
                    problems.append(f"{where} comes from key {ref['key']!r} of Secret {ref['name']}, which has only {sorted(known[ref['name']])}")
    return problems


# --- the database (kustomizations whose runtime keeps its runs in PostgreSQL) -----------


@dataclass
class Database:
    fleet: Fleet
    url: SplitResult
    """The runtime's storageConfig.databaseUrl."""
    service: dict | None
    """The Service named by the URL's host."""
    statefulset: dict | None
    """The one StatefulSet that Service selects."""


def database(objects: list[dict]) -> Database | None:
    """The runtime's PostgreSQL and what it points at; None when its storageConfig is not postgres."""
    config, problems = runtime_config(objects)
    storage = (config or {}).get("storageConfig") or {}
    if problems or storage.get("type") != "postgres":
        return None
    fleet = Fleet(objects)
    url = urlsplit(str(storage.get("databaseUrl", "")))
    host = (url.hostname or "").split(".")[0]
    service = next((s for s in fleet.of_kind("Service") if s["metadata"]["name"] == host), None)
    selected = [w for w in fleet.of_kind("StatefulSet") if service and selects(service["spec"].get("selector") or {"-": "-"}, pod_labels(w))]
    return Database(fleet, url, service, selected[0] if len(selected) == 1 else None)


def check_database_address(objects: list[dict]) -> list[str]:
    """databaseUrl's host is the headless Service governing a one-replica PostgreSQL
    StatefulSet (in this namespace, if the host is a full name), its port a port of that Service."""
    db = database(objects)
    if db is None:
        return []
    if db.url.scheme not in ("postgres", "postgresql"):
        return [f"databaseUrl scheme {db.url.scheme!r} is not postgres or postgresql"]
    if db.service is None:
        return [f"databaseUrl host {db.url.hostname!r} is not a Service of this kustomization"]
    name = db.service["metadata"]["name"]
    problems = []
    if "." in (db.url.hostname or "") and service_dns(db.service, db.url.port or 5432).split(":")[0] != db.url.hostname:
        problems.append(f"databaseUrl host {db.url.hostname} is not {service_dns(db.service, 5432)}")
    if (db.url.port or 5432) not in [port["port"] for port in db.service["spec"]["ports"]]:
        problems.append(f"databaseUrl port {db.url.port or 5432} is not a port of Service {name}")
    if db.statefulset is None:
        return [*problems, f"Service {name} does not select the pods of exactly one StatefulSet"]
    if db.statefulset["spec"].get("serviceName") != name or db.service["spec"].get("clusterIP") != "None":
        problems.append(f"Service {name} is not the headless Service governing StatefulSet {db.statefulset['metadata']['name']}")
    if db.statefulset["spec"].get("replicas", 1) != 1:
        problems.append("PostgreSQL must run as one replica (there is no replication here)")
    return problems


def check_database_credentials(objects: list[dict]) -> list[str]:
    """The password is no literal in the ConfigMap: every ${VAR} of databaseUrl is an env
    var of the runtime taken from a Secret, and the password is the Secret key the database
    is initialised with; the URL's user and database are those the database creates."""
    db = database(objects)
    if db is None or db.statefulset is None:
        return []
    runtime = db.fleet.container("runtime")
    postgres = pod_spec(db.statefulset)["containers"][0]
    known = secrets(db.fleet)
    problems = []
    password = re.fullmatch(r"\$\{(\w+)\}", db.url.password or "")
    if password is None:
        problems.append("databaseUrl's password is not a ${VAR} taken from the environment")
    for name in re.findall(r"\$\{(\w+)\}", db.url.geturl()):
        ref = secret_ref(runtime, name)
        if not ref or ref.get("optional"):
            problems.append(f"databaseUrl's ${{{name}}} is not an env var of the runtime taken from a Secret (not optional)")
    if password and secret_ref(runtime, password.group(1)) != secret_ref(postgres, "POSTGRES_PASSWORD"):
        problems.append(f"the runtime's {password.group(1)} is not the Secret key PostgreSQL's POSTGRES_PASSWORD comes from")
    for part, variable in ((db.url.username, "POSTGRES_USER"), (db.url.path.lstrip("/"), "POSTGRES_DB")):
        ref = secret_ref(postgres, variable)
        value = known.get(ref.get("name", ""), {}).get(ref.get("key", "")) if ref else (env_var(postgres, variable) or {}).get("value")
        if part != value:
            problems.append(f"databaseUrl says {part!r} where PostgreSQL's {variable} is {value!r}")
    return problems


def check_database_storage(objects: list[dict]) -> list[str]:
    """PostgreSQL's data directory (PGDATA) is inside a volume from the StatefulSet's
    volumeClaimTemplates, a ReadWriteOnce claim with a size."""
    db = database(objects)
    if db is None or db.statefulset is None:
        return []
    templates = {t["metadata"]["name"]: t["spec"] for t in db.statefulset["spec"].get("volumeClaimTemplates", [])}
    container = pod_spec(db.statefulset)["containers"][0]
    pgdata = PurePosixPath((env_var(container, "PGDATA") or {}).get("value", "/var/lib/postgresql/data"))
    mounts = [m for m in container.get("volumeMounts", []) if pgdata == PurePosixPath(m["mountPath"]) or PurePosixPath(m["mountPath"]) in pgdata.parents]
    if not mounts or mounts[-1]["name"] not in templates:
        return [f"PGDATA {pgdata} is not on a volume from the StatefulSet's volumeClaimTemplates ({sorted(templates)})"]
    claim = templates[mounts[-1]["name"]]
    problems = []
    if claim.get("accessModes") != ["ReadWriteOnce"]:
        problems.append(f"the data claim's accessModes are {claim.get('accessModes')}, not [ReadWriteOnce]")
    if "storage" not in claim.get("resources", {}).get("requests", {}):
        problems.append("the data claim requests no storage size")
    if mounts[-1]["name"] in {v["name"] for v in pod_spec(db.statefulset).get("volumes", [])}:
        problems.append(f"volume {mounts[-1]['name']} is also a pod volume, which would hide the claim")
    return problems


def check_database_probes(objects: list[dict]) -> list[str]:
    """PostgreSQL has readiness and liveness probes; the runtime's readiness asks its
    health (503 while the database is away) and its liveness does not (a restart would not
    bring the database back)."""
    db = database(objects)
    if db is None or db.statefulset is None:
        return []
    postgres = pod_spec(db.statefulset)["containers"][0]
    runtime = db.fleet.container("runtime")
    health = command_lines()["runtime"].health_path
    problems = [f"PostgreSQL has no {kind}" for kind in ("readinessProbe", "livenessProbe") if not postgres.get(kind)]
    if runtime.get("readinessProbe", {}).get("httpGet", {}).get("path") != health:
        problems.append(f"the runtime's readinessProbe does not GET {health}")
    if runtime.get("livenessProbe", {}).get("httpGet", {}).get("path") == health:
        problems.append(f"the runtime's livenessProbe GETs {health}, which fails while the database is away: it would restart a runtime that is only waiting")
    return problems


def check_database_network(objects: list[dict]) -> list[str]:
    """Only the runtime's pods may reach PostgreSQL."""
    db = database(objects)
    if db is None or db.statefulset is None or db.service is None:
        return []
    port = db.service["spec"]["ports"][0]
    return only_reachable_by(db.fleet, db.statefulset, port.get("targetPort", port["port"]), DEPLOYMENTS["runtime"], "PostgreSQL")


ALL_CHECKS = [
    check_namespace,
    check_services_select_pods,
    check_architecture_names,
    check_commands,
    check_proxy_upstream,
    check_probes,
    check_network_policy,
    check_runtime_config,
    check_pod_security,
    check_shutdown,
    check_scaling,
    check_runtime_replicas,
    check_resources,
    check_metrics_annotations,
    check_pod_env,
    check_secret_references,
    check_database_address,
    check_database_credentials,
    check_database_storage,
    check_database_probes,
    check_database_network,
]
