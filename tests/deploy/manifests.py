"""Checks of the wiring between rendered Kubernetes objects.

Each `check_*` function takes the objects of one rendered kustomization and returns the
problems it finds, as sentences (an empty list: all is well). The tests run every check
on every kustomization, and also feed them deliberately broken objects to show each
check can fail.
"""

import shlex
from pathlib import PurePosixPath

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
    wanted = selector["matchLabels"] if "matchLabels" in selector else selector
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
    """Every Service selects the pods of exactly one Deployment, and each targetPort is a
    port those pods' container declares."""
    fleet = Fleet(objects)
    problems = []
    for service in fleet.of_kind("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"].get("selector") or {}
        if not selector:
            problems.append(f"Service {name} has no selector")
            continue
        matched = [d for d in fleet.of_kind("Deployment") if selects(selector, pod_labels(d))]
        if len(matched) != 1:
            names = [d["metadata"]["name"] for d in matched]
            problems.append(f"Service {name} selects the pods of {names or 'no Deployment'}")
            continue
        container = pod_spec(matched[0])["containers"][0]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if resolve_port(container, target) is None:
                problems.append(
                    f"Service {name} targetPort {target!r} is not a port of "
                    f"{matched[0]['metadata']['name']}'s container"
                )
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
    headless = [
        s
        for s in fleet.of_kind("Service")
        if s["spec"].get("clusterIP") == "None" and selects(s["spec"].get("selector", {}), pods)
    ]
    if len(headless) != 1:
        return [f"expected one headless Service for the component-server pods, found {len(headless)}"]
    service = headless[0]
    wanted = [service_dns(service, p["port"]) for p in service["spec"]["ports"]]
    if upstream not in wanted:
        return [f"proxy --upstream {upstream!r} is not the headless Service ({' or '.join(wanted)})"]
    return []


def check_probes(objects: list[dict]) -> list[str]:
    """Readiness and liveness probes GET the documented health path on the http port."""
    fleet = Fleet(objects)
    problems = []
    for service, command in command_lines().items():
        container = fleet.container(service)
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container.get(kind)
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
                "namespaceSelector" not in peer
                and "ipBlock" not in peer
                and selects(peer.get("podSelector", {}), pod_labels(deployment))
                for peer in peers
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
    deployments = fleet.of_kind("Deployment")
    isolated = fleet.deployment(service)
    container = fleet.container(service)
    http_port = resolve_port(container, "http")
    policies = [
        p for p in fleet.of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"], pod_labels(isolated))
    ]
    if len(policies) != 1:
        return [f"expected one NetworkPolicy selecting the {service} pods, found {len(policies)}"]
    policy = policies[0]
    problems = []
    if "Ingress" not in policy["spec"].get("policyTypes", []):
        problems.append(f"the {service} NetworkPolicy does not restrict Ingress")
    others = [
        d["metadata"]["name"]
        for d in deployments
        if d is not isolated and selects(policy["spec"]["podSelector"], pod_labels(d))
    ]
    if others:
        problems.append(f"the {service} NetworkPolicy also isolates {others}")
    allowed = allowed_sources(policy, http_port, container, deployments)
    if allowed != {DEPLOYMENTS[client]}:
        problems.append(f"port {http_port} of the {service} pods is open to {sorted(allowed)}, not just the {client}")
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
    if problems:
        return problems
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
    for service in DEPLOYMENTS:
        spec = pod_spec(fleet.deployment(service))
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


def check_shutdown(objects: list[dict]) -> list[str]:
    """Every pod sleeps in preStop (so it leaves Service endpoints and DNS before it stops
    taking work), and the grace period covers that sleep plus the drain: for component
    pods, DRAIN_GRACE_SECONDS of in-flight executions and pinned callbacks, during which
    the liveness probe must not give up on them."""
    fleet = Fleet(objects)
    problems = []
    for service in DEPLOYMENTS:
        deployment = fleet.deployment(service)
        container = fleet.container(service)
        sleep = prestop_sleep(container)
        if sleep <= 0:
            problems.append(f"{service}: no preStop sleep")
        drain = int(env_value(container, "DRAIN_GRACE_SECONDS") or 0)
        if service == "component-server" and drain <= 0:
            problems.append("component-server: DRAIN_GRACE_SECONDS is not set")
        liveness = container.get("livenessProbe", {})
        window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
        if window <= drain:
            problems.append(
                f"{service}: the liveness probe would kill a pod {window}s into a {drain}s drain "
                "(its /health answers 503 while draining)"
            )
        grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
        if grace <= sleep + drain:
            problems.append(
                f"{service}: terminationGracePeriodSeconds {grace} does not cover "
                f"preStop {sleep}s + drain {drain}s"
            )
    return problems


def check_scaling(objects: list[dict]) -> list[str]:
    """Replica counts, the PodDisruptionBudget and the HorizontalPodAutoscaler of the
    component-server pods fit together."""
    fleet = Fleet(objects)
    problems = []
    replicas = {service: fleet.deployment(service)["spec"].get("replicas", 1) for service in DEPLOYMENTS}
    if replicas != {"runtime": 1, "proxy": 2, "component-server": 3}:
        problems.append(f"replicas are {replicas}")
    if fleet.deployment("runtime")["spec"].get("strategy", {}).get("type") != "Recreate":
        problems.append("the single in-memory runtime must update with strategy Recreate")
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
    for service in DEPLOYMENTS:
        resources = fleet.container(service).get("resources", {})
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
    check_resources,
    check_metrics_annotations,
    check_pod_env,
]
