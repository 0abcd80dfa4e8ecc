"""The kustomizations render, every object is valid Kubernetes, and the pieces are wired
to each other and to docs/architecture.md (see manifests.py for what each check means)."""

import copy

import kubernetes_validate
import pytest
import yaml

from runtime_server.config import store_settings

from . import manifests
from .conftest import REPO_ROOT, render
from .images import built_images, exec_form, last
from .manifests import ALL_CHECKS, Fleet, argv

# The Kubernetes version the objects are validated against (schemas ship with the
# kubernetes-validate package, so no network). k3s in lima/ installs the same minor.
KUBERNETES_VERSION = "1.32.0"


def test_every_object_is_valid_kubernetes(rendered):
    errors = []
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{obj['kind']} {obj['metadata']['name']}: {path}: {error.message}")
    assert errors == []


# What an overlay adds to the base's objects.
ADDED_KINDS = {"overlays/postgres": ["Secret", "StatefulSet", "Service", "NetworkPolicy", "PodDisruptionBudget"]}


def test_the_fleet_is_all_there(request, rendered):
    kinds = sorted(obj["kind"] for obj in rendered)
    assert kinds == sorted(
        ["Namespace", "ConfigMap", "ConfigMap", "Deployment", "Deployment", "Deployment", "Service", "Service", "Service"]  # noqa: RUF005 - two rows
        + ["PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "NetworkPolicy"]
        + ADDED_KINDS.get(request.node.callspec.params["rendered"], [])
    )


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda check: check.__name__)
def test_wiring(rendered, check):
    assert check(rendered) == []


def test_the_configmap_holds_config_stepflow_config_yml(request, rendered):
    config, problems = manifests.runtime_config(rendered)
    assert problems == []
    expected = yaml.safe_load((REPO_ROOT / "config" / "stepflow-config.yml").read_text())
    if request.node.callspec.params["rendered"] == "overlays/postgres":
        kept = {key: value for key, value in expected.items() if key != "stateStore"}
        expected = {**kept, "storageConfig": config.get("storageConfig"), "recovery": config.get("recovery")}
    assert config == expected
    assert (REPO_ROOT / "k8s/base/stepflow-config.yml").read_text() == (REPO_ROOT / "config/stepflow-config.yml").read_text(), (
        "k8s/base/stepflow-config.yml and config/stepflow-config.yml differ"
    )


@pytest.mark.parametrize(
    "overlay, policy",
    [("overlays/local", "Always"), ("overlays/kind", "IfNotPresent"), ("overlays/postgres", "Always")],
)
def test_overlays_run_the_built_images(kubectl, overlay, policy):
    """Each Deployment runs the image scripts/build-images.sh tags for it (default REGISTRY
    and TAG), built from the Dockerfile whose CMD runs the same module, with the pull
    policy its cluster needs."""
    fleet = Fleet(render(kubectl, overlay))
    by_ref = {image.ref: image for image in built_images().values()}
    for service in manifests.DEPLOYMENTS:
        container = fleet.container(service)
        assert container["image"] in by_ref, f"{service} runs {container['image']}, which no script builds"
        image = by_ref[container["image"]]
        cmd = exec_form(last(image.dockerfile, "CMD").arguments)
        assert cmd[:3] == argv(container)[:3], f"{service} runs {argv(container)[:3]} but {image.dockerfile.name} {cmd[:3]}"
        assert container["imagePullPolicy"] == policy


def test_the_postgres_overlay_keeps_runs_in_the_statefulset(kubectl):
    """Beyond the generic checks: the component's config differs from the base's in storage only,
    and the URL the runtime ends up with, ${POSTGRES_PASSWORD} filled in from the Secret, is the
    database PostgreSQL is initialised with."""
    objects = render(kubectl, "overlays/postgres")
    config, _ = manifests.runtime_config(objects)
    assert config["storageConfig"] == {"type": "postgres", "databaseUrl": "postgresql://stepflow:${POSTGRES_PASSWORD}@stepflow-postgres:5432/stepflow"}
    assert config["recovery"] == {"enabled": True, "leaseTtlSecs": 6, "checkIntervalSecs": 1, "maxStartupRecovery": 10000, "maxClaimsPerCheck": 1000}
    assert "stateStore" not in config
    fleet = Fleet(objects)
    secret = manifests.secrets(fleet)[manifests.secret_ref(fleet.container("runtime"), "POSTGRES_PASSWORD")["name"]]
    url = config["storageConfig"]["databaseUrl"].replace("${POSTGRES_PASSWORD}", secret["password"])
    assert url == f"postgresql://{secret['username']}:{secret['password']}@stepflow-postgres:5432/{secret['database']}"
    store = store_settings(config, {"POSTGRES_PASSWORD": secret["password"]})  # what the runtime makes of it
    assert (store.type, store.database_url) == ("postgres", url)
    assert fleet.get("StatefulSet", "stepflow-postgres")["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]


# --- the checks can fail -------------------------------------------------------------


@pytest.fixture
def broken(kubectl):
    """A fresh copy of the local overlay to break."""
    return copy.deepcopy(render(kubectl, "overlays/local"))


def test_validation_rejects_a_misspelt_field(broken):
    deployment = Fleet(broken).deployment("proxy")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_a_service_selecting_nothing_is_caught(broken):
    Fleet(broken).get("Service", "stepflow-load-balancer")["spec"]["selector"] = {"app.kubernetes.io/name": "proxy"}
    assert manifests.check_services_select_pods(broken)
    assert manifests.check_architecture_names(broken)


def test_a_wrong_target_port_is_caught(broken):
    Fleet(broken).get("Service", "component-server")["spec"]["ports"][0]["targetPort"] = "web"
    assert manifests.check_services_select_pods(broken)


def test_a_wrong_upstream_is_caught(broken):
    args = Fleet(broken).container("proxy")["args"]
    args[args.index("--upstream") + 1] = "component-server.default.svc.cluster.local:8080"
    assert manifests.check_proxy_upstream(broken)


def test_an_undocumented_flag_is_caught(broken):
    Fleet(broken).container("component-server")["args"] += ["--workers", "4"]
    assert manifests.check_commands(broken)


def test_a_probe_on_an_undeclared_port_is_caught(broken):
    Fleet(broken).container("runtime")["readinessProbe"]["httpGet"]["port"] = 8080
    assert manifests.check_probes(broken)


def test_a_network_policy_open_to_the_runtime_is_caught(broken):
    policy = Fleet(broken).get("NetworkPolicy", "component-server-ingress")
    policy["spec"]["ingress"][0]["from"].append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "stepflow-server"}}})
    assert manifests.check_network_policy(broken)


def test_metrics_served_off_the_annotated_port_are_caught(broken):
    container = Fleet(broken).container("proxy")
    container["args"][container["args"].index("--metrics-listen") + 1] = "0.0.0.0:9091"
    assert manifests.check_metrics_annotations(broken)


def test_a_proxy_open_to_every_pod_is_caught(broken):
    policy = Fleet(broken).get("NetworkPolicy", "stepflow-load-balancer-ingress")
    policy["spec"]["ingress"][0]["from"] = [{"podSelector": {}}]
    assert manifests.check_network_policy(broken)


def test_a_config_pointing_elsewhere_is_caught(broken):
    config_map = next(item for item in Fleet(broken).of_kind("ConfigMap") if "stepflow-config.yml" in item.get("data", {}))
    config_map["data"]["stepflow-config.yml"] = config_map["data"]["stepflow-config.yml"].replace(
        "stepflow-load-balancer.stepflow-demo", "stepflow-load-balancer.default"
    )
    assert manifests.check_runtime_config(broken)


def test_a_short_grace_period_is_caught(broken):
    Fleet(broken).deployment("component-server")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    assert manifests.check_shutdown(broken)


def test_a_liveness_probe_shorter_than_the_drain_is_caught(broken):
    Fleet(broken).container("component-server")["livenessProbe"]["failureThreshold"] = 3
    assert manifests.check_shutdown(broken)


def test_a_root_container_is_caught(broken):
    Fleet(broken).deployment("proxy")["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
    assert manifests.check_pod_security(broken)


@pytest.fixture
def broken_postgres(kubectl):
    """A fresh copy of the PostgreSQL overlay to break."""
    return copy.deepcopy(render(kubectl, "overlays/postgres"))


def _postgres_container(objects: list[dict]) -> dict:
    return Fleet(objects).get("StatefulSet", "stepflow-postgres")["spec"]["template"]["spec"]["containers"][0]


def _set_database_url(objects: list[dict], old: str, new: str) -> None:
    config_map = next(item for item in Fleet(objects).of_kind("ConfigMap") if "stepflow-config.yml" in item.get("data", {}))
    config_map["data"]["stepflow-config.yml"] = config_map["data"]["stepflow-config.yml"].replace(old, new)


def test_a_secret_key_that_is_not_there_is_caught(broken_postgres):
    manifests.secret_ref(Fleet(broken_postgres).container("runtime"), "POSTGRES_PASSWORD")["key"] = "passwd"
    assert manifests.check_secret_references(broken_postgres)
    assert manifests.check_database_credentials(broken_postgres)


def test_a_database_url_naming_another_host_is_caught(broken_postgres):
    _set_database_url(broken_postgres, "@stepflow-postgres:", "@postgres:")
    assert manifests.check_database_address(broken_postgres)


def test_a_database_url_on_another_port_is_caught(broken_postgres):
    _set_database_url(broken_postgres, ":5432/", ":5433/")
    assert manifests.check_database_address(broken_postgres)


def test_a_literal_password_in_the_config_is_caught(broken_postgres):
    _set_database_url(broken_postgres, "${POSTGRES_PASSWORD}", "hunter2")
    assert manifests.check_database_credentials(broken_postgres)


def test_a_database_name_the_server_does_not_create_is_caught(broken_postgres):
    _set_database_url(broken_postgres, "5432/stepflow", "5432/runs")
    assert manifests.check_database_credentials(broken_postgres)


def test_data_off_the_volume_claim_is_caught(broken_postgres):
    Fleet(broken_postgres).get("StatefulSet", "stepflow-postgres")["spec"]["volumeClaimTemplates"] = []
    assert manifests.check_database_storage(broken_postgres)
    pgdata = manifests.env_var(_postgres_container(broken_postgres), "PGDATA")
    assert pgdata is not None
    pgdata["value"] = "/tmp/pgdata"
    assert manifests.check_database_storage(broken_postgres)


def test_a_runtime_killed_for_its_database_being_away_is_caught(broken_postgres):
    Fleet(broken_postgres).container("runtime")["livenessProbe"] = {"httpGet": {"path": "/api/v1/health", "port": "http"}}
    assert manifests.check_database_probes(broken_postgres)
    del _postgres_container(broken_postgres)["readinessProbe"]
    assert len(manifests.check_database_probes(broken_postgres)) == 2


def test_a_database_open_to_the_proxies_is_caught(broken_postgres):
    policy = Fleet(broken_postgres).get("NetworkPolicy", "stepflow-postgres-ingress")
    policy["spec"]["ingress"][0]["from"].append({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "stepflow-load-balancer"}}})
    assert manifests.check_database_network(broken_postgres)


def test_an_in_memory_runtime_with_two_replicas_is_caught(broken):
    Fleet(broken).deployment("runtime")["spec"]["replicas"] = 2
    assert manifests.check_runtime_replicas(broken)


def test_a_single_runtime_on_postgres_is_caught(broken_postgres):
    Fleet(broken_postgres).deployment("runtime")["spec"]["replicas"] = 1
    assert manifests.check_runtime_replicas(broken_postgres)


def test_replicas_sharing_one_orchestrator_id_are_caught(broken_postgres):
    orchestrator_id = manifests.env_var(Fleet(broken_postgres).container("runtime"), "STEPFLOW_ORCHESTRATOR_ID")
    del orchestrator_id["valueFrom"]
    orchestrator_id["value"] = "stepflow-server"
    assert manifests.check_runtime_replicas(broken_postgres)


def test_replicas_updated_all_at_once_are_caught(broken_postgres):
    Fleet(broken_postgres).deployment("runtime")["spec"]["strategy"] = {"type": "Recreate"}
    assert manifests.check_runtime_replicas(broken_postgres)
    Fleet(broken_postgres).deployment("runtime")["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    assert manifests.check_runtime_replicas(broken_postgres)


def test_a_runtime_disruption_budget_missing_or_blocking_every_drain_is_caught(broken_postgres):
    budget = Fleet(broken_postgres).get("PodDisruptionBudget", "stepflow-server")
    budget["spec"]["minAvailable"] = 2
    assert manifests.check_runtime_replicas(broken_postgres)
    broken_postgres.remove(budget)
    assert manifests.check_runtime_replicas(broken_postgres)


def test_recovery_turned_off_is_caught(broken_postgres):
    config_map = next(item for item in Fleet(broken_postgres).of_kind("ConfigMap") if "stepflow-config.yml" in item.get("data", {}))
    config_map["data"]["stepflow-config.yml"] = config_map["data"]["stepflow-config.yml"].replace("enabled: true", "enabled: false")
    assert manifests.check_runtime_replicas(broken_postgres)


def test_a_grace_period_shorter_than_the_runtime_shutdown_is_caught(broken_postgres):
    manifests.env_var(Fleet(broken_postgres).container("runtime"), "SHUTDOWN_GRACE_SECONDS")["value"] = "40"
    assert manifests.check_shutdown(broken_postgres)
