"""The deploy files: they parse, every service and container is complete, the worker's
privileges are the documented ones, and every STOCKADE_* they set is a real setting."""

from __future__ import annotations

import base64
import configparser
import dataclasses
import http.server
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
OPERATING = ROOT / "docs" / "operating.md"
NAME = re.compile(r"\bSTOCKADE_[A-Z0-9_]*[A-Z0-9]\b")


# --- The settings the code knows ----------------------------------------------------------------


class _Recorder(dict[str, str]):
    """An empty environment that remembers every name a from_env() asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return False


def known_settings() -> set[str]:
    """Every STOCKADE_* name the code reads: the service Config's fields and maxima, what each
    from_env() asks for, and every other STOCKADE_ literal in the packages' source."""
    from sandbox.config import HostConfig
    from service.config import Config
    from worker.callbacks import CallbackSettings
    from worker.jobs.model import MAXIMA
    from worker.jobs.settings import WorkerSettings

    names = {f"STOCKADE_{f.name.upper()}" for f in dataclasses.fields(Config)}
    names |= {f"STOCKADE_MAX_{key.upper()}" for key in MAXIMA}
    for settings in (HostConfig, WorkerSettings, CallbackSettings, Config):
        env = _Recorder()
        settings.from_env(env)
        names |= env.asked
    for package in ("sandbox", "service", "worker"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(NAME.findall(path.read_text()))
    return names


@pytest.fixture(scope="module")
def known() -> set[str]:
    return known_settings()


def test_known_settings_come_from_the_code(known: set[str]) -> None:
    assert {"STOCKADE_REDIS_URL", "STOCKADE_STATE_DIR", "STOCKADE_ROOTFS"} <= known
    assert "STOCKADE_MAX_CPU_TIME_LIMIT" in known
    assert "STOCKADE_NO_SUCH_SETTING" not in known


# --- The documented worker privileges -----------------------------------------------------------


def documented_capabilities() -> dict[str, str]:
    """{capability: when} from the table under the marker in docs/operating.md."""
    lines = OPERATING.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "worker-capabilities" in line)
    caps: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        match = re.fullmatch(r"`([A-Z_]+)`", cells[0])
        if match:
            caps[match.group(1)] = cells[1]
    return caps


def always_capabilities() -> list[str]:
    return sorted(c for c, when in documented_capabilities().items() if when == "always")


def test_the_documented_table_parses() -> None:
    caps = documented_capabilities()
    assert {"SYS_ADMIN", "NET_ADMIN", "SETUID", "SETGID"} <= set(always_capabilities())
    assert "SYS_PTRACE" in caps and caps["SYS_PTRACE"] != "always"


# --- Compose -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_every_compose_service_is_complete(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "api", "worker", "flower", "prometheus"} <= set(services)
    for name, svc in services.items():
        assert svc.get("image"), name
        assert svc.get("command"), name
        resources = svc["deploy"]["resources"]
        assert resources["limits"]["memory"] and resources["limits"]["cpus"], name
        assert resources["reservations"]["memory"], name
        assert svc["healthcheck"]["test"], name
    assert services["flower"]["profiles"] == ["flower"]
    assert services["prometheus"]["profiles"] == ["monitoring"]


def redis_server_args(script: str) -> list[str]:
    """The arguments of the `exec redis-server` line of a deploy file's start-up script."""
    line = next(ln for ln in script.splitlines() if ln.startswith("exec redis-server "))
    return shlex.split(line.partition("<<")[0])[2:]


def test_compose_redis_keeps_an_aof_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    args = redis_server_args(redis["command"][2])
    assert args[args.index("--appendonly") + 1] == "yes"
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert args[args.index("--dir") + 1] == redis["volumes"][0].split(":")[1]


def test_compose_workers_scale_and_hold_only_the_documented_privileges(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N
    assert worker["cap_drop"] == ["ALL"]
    assert sorted(worker["cap_add"]) == always_capabilities()
    assert set(worker["security_opt"]) == {"seccomp=unconfined", "apparmor=unconfined"}
    assert worker["cgroup"] == "private"
    assert not worker.get("privileged")
    api = compose["services"]["api"]
    assert api["cap_drop"] == ["ALL"] and not api.get("cap_add")
    assert api["user"] != "0" and not api["user"].startswith("0:")


def test_the_cgroup_v1_override_makes_the_worker_privileged() -> None:
    data = yaml.safe_load((DEPLOY / "docker" / "compose.cgroup-v1.yaml").read_text())
    assert data["services"]["worker"]["privileged"] is True


def _compose_settings(compose: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for svc in compose["services"].values():
        env = svc.get("environment") or {}
        names |= {k for k in env if k.startswith("STOCKADE_")}
    return names


def test_compose_sets_only_real_settings(compose: dict[str, Any], known: set[str]) -> None:
    names = _compose_settings(compose)
    assert "STOCKADE_REDIS_URL" in names  # the merge key was read
    assert names <= known, names - known


# --- Redis's password ------------------------------------------------------------------------

PASSWORD = "REDIS_PASSWORD"
NEEDS_PASSWORD = f"${{{PASSWORD}:?set {PASSWORD} in deploy/.env (docs/operating.md)}}"


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation (compose-spec, "Interpolation") of the forms the file uses:
    $$ is a $, ${VAR:?message} stops without VAR, ${VAR:-default}, ${VAR}."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\$|\$\{([A-Z_]+)(:[?-])?([^}]*)\}", one, value)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def test_compose_redis_requires_a_password_every_client_gives(compose: dict[str, Any]) -> None:
    """Redis gets REDIS_PASSWORD (compose stops without it) on stdin; the API, the workers
    and Flower give that very password in their URL; no URL anywhere goes without it."""
    services = compose["services"]
    redis = services["redis"]
    assert redis["environment"] == {PASSWORD: NEEDS_PASSWORD}
    assert redis["command"][:2] == ["sh", "-c"]
    assert "requirepass $$REDIS_PASSWORD" in redis["command"][2].splitlines()
    assert "REDISCLI_AUTH=" in redis["healthcheck"]["test"][1]
    assert redis["user"].split(":")[0] not in ("0", "root")
    env = {PASSWORD: "0123abcd"}
    clients = set()
    for name, svc in services.items():
        for text in _strings(svc):
            if "redis://" not in text:
                continue
            clients.add(name)
            url = urlsplit(interpolate(text, env))
            assert (url.password, url.hostname, url.port) == ("0123abcd", "redis", 6379), name
            with pytest.raises(ValueError, match=PASSWORD):
                interpolate(text, {})
    assert clients == {"api", "worker", "flower"}
    override = yaml.safe_load(COMPOSE_FILES[1].read_text())
    assert not any("redis" in t.lower() for t in _strings(override["services"]["worker"]))


def _redis_server() -> str:
    server = shutil.which("redis-server")
    if server is None or shutil.which("redis-cli") is None:
        pytest.skip("needs redis-server and redis-cli (Debian redis-server)")
    return server


def _wait_for_socket(sock: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.02)


def _ping(sock: Path, password: str | None) -> bool:
    import redis

    try:
        client = redis.Redis(unix_socket_path=str(sock), password=password, socket_timeout=5)
        with client:
            return bool(client.ping())
    except redis.AuthenticationError:
        return False


def run_redis_script(script: str, probe: str, tmp_path: Path, data_dir: str) -> None:
    """A deploy file's Redis start-up script and health probe, run for real with a password:
    its port moved to a unix socket in tmp_path (nothing listens on TCP), its data dir there
    too. Redis must refuse a client without the password and take one with it; the probe
    must pass with the password and fail with another."""
    _redis_server()
    sock = tmp_path / "redis.sock"
    local = script.replace(f"--dir {data_dir}", f"--dir {tmp_path} --port 0 --unixsocket {sock}")
    assert local != script
    env = {"PATH": "/usr/bin:/bin", PASSWORD: "f00dfeed"}
    proc = subprocess.Popen(["sh", "-c", local], env=env, stderr=subprocess.PIPE)
    try:
        _wait_for_socket(sock, proc)
        assert not _ping(sock, None) and not _ping(sock, "wrong") and _ping(sock, "f00dfeed")
        probe = probe.replace("redis-cli ", f"redis-cli -s {sock} ", 1)
        for password, healthy in (("f00dfeed", True), ("wrong", False)):
            r = subprocess.run(["sh", "-c", probe], env={**env, PASSWORD: password}, timeout=30)
            assert (r.returncode == 0) is healthy, password
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_compose_redis_script_and_health_check_work_for_real(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    redis = compose["services"]["redis"]
    script = interpolate(redis["command"][2], {})
    probe = interpolate(redis["healthcheck"]["test"][1], {})
    run_redis_script(script, probe, tmp_path, "/data")


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    return [docker, "compose"] if probe.returncode == 0 else None


COMPOSE_FILES = [COMPOSE, DEPLOY / "docker" / "compose.cgroup-v1.yaml"]


def _validate_compose(text: str) -> None:
    """The Compose specification's own rules (compose-spec, a parser that refuses unknown
    keys, wrong types and unknown values). It does not read YAML merge keys, which
    `docker compose` does: PyYAML resolves them first."""
    from compose_spec import PyCompose

    PyCompose.from_yaml(yaml.safe_dump(yaml.safe_load(text)))


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_follow_the_compose_specification(path: Path) -> None:
    _validate_compose(path.read_text())


@pytest.mark.parametrize(
    "broken",
    [
        "services:\n  a:\n    image: x\n    mem_limt: 1g\n",  # a misspelt key
        "services:\n  a:\n    image: x\n    cgroup: privat\n",  # an unknown value
        "services:\n  a:\n    image: x\n    mem_limit: [1]\n",  # a wrong type
        "service: {}\n",  # no services
    ],
)
def test_the_compose_validator_refuses_a_broken_file(broken: str) -> None:
    with pytest.raises(ValueError):
        _validate_compose(broken)


def test_cgroup_v1_override_names_only_services_of_the_base_file(compose: dict[str, Any]) -> None:
    override = yaml.safe_load(COMPOSE_FILES[1].read_text())
    assert set(override["services"]) <= set(compose["services"])


def test_docker_compose_agrees_where_it_is_installed() -> None:
    """`docker compose config` on both files, where the docker client has its compose
    plugin (Debian's docker.io has none; the specification check above always runs)."""
    cmd = _docker_compose()
    for files in ([COMPOSE], COMPOSE_FILES) if cmd else ():
        args = [a for f in files for a in ("-f", str(f))]
        r = subprocess.run([*cmd, *args, "config", "-q"], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()


# --- Prometheus --------------------------------------------------------------------------------


def test_prometheus_scrapes_the_api_and_alerts_on_real_metrics() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:2358"]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    metrics_source = (ROOT / "service" / "metrics.py").read_text()
    for rule in rules["groups"][0]["rules"]:
        for metric in re.findall(r"\bstockade_[a-z_]+", rule["expr"]):
            assert f'"{metric}"' in metrics_source, metric


# --- Kubernetes --------------------------------------------------------------------------------


def _k8s_documents(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            docs += _k8s_documents(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def k8s() -> list[dict[str, Any]]:
    return _k8s_documents(K8S)


def _workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def _containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, workload in _workloads(docs).items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            yield f"{name}/{container['name']}", container


def test_every_k8s_container_is_complete(k8s: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in k8s}
    assert {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget"} <= kinds
    seen = 0
    for name, container in _containers(k8s):
        seen += 1
        assert container.get("image"), name
        assert container.get("command"), name
        resources = container["resources"]
        for key in ("requests", "limits"):
            assert resources[key]["cpu"] and resources[key]["memory"], (name, key)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container.get(probe), (name, probe)
    assert seen == 3


def test_k8s_redis_persists_with_aof(k8s: list[dict[str, Any]]) -> None:
    redis = _workloads(k8s)["redis"]
    assert redis["kind"] == "StatefulSet"
    claim = redis["spec"]["volumeClaimTemplates"][0]
    args = redis_server_args(redis["spec"]["template"]["spec"]["containers"][0]["args"][0])
    assert args[args.index("--appendonly") + 1] == "yes"
    mounts = redis["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert claim["metadata"]["name"] in {m["name"] for m in mounts}


def test_k8s_worker_holds_only_the_documented_privileges(k8s: list[dict[str, Any]]) -> None:
    context = dict(_containers(k8s))["stockade-worker/worker"]["securityContext"]
    assert context["capabilities"]["drop"] == ["ALL"]
    assert sorted(context["capabilities"]["add"]) == always_capabilities()
    assert context["seccompProfile"] == {"type": "Unconfined"}
    assert context["appArmorProfile"] == {"type": "Unconfined"}
    assert context["privileged"] is False
    api = dict(_containers(k8s))["stockade-api/api"]["securityContext"]
    assert api["capabilities"] == {"drop": ["ALL"]} and api["allowPrivilegeEscalation"] is False


def test_k8s_sets_only_real_settings(k8s: list[dict[str, Any]], known: set[str]) -> None:
    names: set[str] = set()
    for _, container in _containers(k8s):
        names |= {e["name"] for e in container.get("env", []) if e["name"].startswith("STOCKADE_")}
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    for generator in base["configMapGenerator"]:
        names |= {lit.split("=", 1)[0] for lit in generator["literals"]}
    assert "STOCKADE_REDIS_URL" in names
    assert names <= known, names - known


SECRET = "stockade-redis"
PASSWORD_FILE = "redis-password.env"
SECRET_REF = {"secretKeyRef": {"name": SECRET, "key": "password"}}
K8S_URL = "redis://:$(REDIS_PASSWORD)@redis:6379/0"


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return dict(_containers(docs))[name]


def test_k8s_redis_password_is_one_secret_the_api_and_workers_give(
    k8s: list[dict[str, Any]],
) -> None:
    """The Secret comes from a file the operator makes (ignored by git: the base does not
    build without it); Redis requires its password, the API and the workers give it in
    STOCKADE_REDIS_URL, made from the Secret, and no ConfigMap holds a URL."""
    base = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    (generator,) = base["secretGenerator"]
    assert generator["name"] == SECRET and generator["envs"] == [PASSWORD_FILE]
    assert generator["options"]["disableNameSuffixHash"] is True
    assert PASSWORD_FILE in (K8S / "base" / ".gitignore").read_text().splitlines()
    for maps in base["configMapGenerator"]:
        assert not any("REDIS" in literal for literal in maps["literals"])
    redis = _container(k8s, "redis/redis")
    assert {"name": PASSWORD, "valueFrom": SECRET_REF} in redis["env"]
    assert "requirepass $REDIS_PASSWORD" in redis["args"][0].splitlines()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert redis[probe]["exec"]["command"][:2] == ["sh", "-c"], probe
        assert "REDISCLI_AUTH=" in redis[probe]["exec"]["command"][2], probe
    clients = set()
    for name, container in _containers(k8s):
        env = container.get("env", [])
        urls = [e for e in env if "redis://" in str(e.get("value", ""))]
        if not urls or name == "redis/redis":
            continue
        clients.add(name)
        names = [e["name"] for e in env]
        # $(REDIS_PASSWORD) expands only from a variable defined earlier in the list.
        assert names.index(PASSWORD) < names.index("STOCKADE_REDIS_URL"), name
        assert env[names.index(PASSWORD)]["valueFrom"] == SECRET_REF, name
        assert [e["value"] for e in urls] == [K8S_URL], name
    assert clients == {"stockade-api/api", "stockade-worker/worker"}
    assert not any("redis://" in t and "$(REDIS_PASSWORD)" not in t for t in _strings(k8s))


def test_k8s_redis_script_and_probe_work_for_real(
    k8s: list[dict[str, Any]], tmp_path: Path
) -> None:
    redis = _container(k8s, "redis/redis")
    probe = redis["readinessProbe"]["exec"]["command"][2]
    run_redis_script(redis["args"][0], probe, tmp_path, "/data")


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions) against a pod's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _pod_labels(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {n: w["spec"]["template"]["metadata"]["labels"] for n, w in _workloads(docs).items()}


def _redis_policies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    redis = _pod_labels(docs)["redis"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    return [p for p in policies if _selects(p["spec"]["podSelector"], redis)]


def test_k8s_networkpolicy_lets_only_the_api_and_workers_reach_redis(
    k8s: list[dict[str, Any]],
) -> None:
    """One policy selects the Redis pods: ingress only, from pods of this namespace that are
    the API's or a worker's, to Redis's port; it selects no other pod."""
    (policy,) = _redis_policies(k8s)
    pods = _pod_labels(k8s)
    spec = policy["spec"]
    assert [n for n, labels in pods.items() if _selects(spec["podSelector"], labels)] == ["redis"]
    assert spec["policyTypes"] == ["Ingress"]
    redis_port = _container(k8s, "redis/redis")["ports"][0]["containerPort"]
    allowed = set()
    for rule in spec["ingress"]:
        assert rule["ports"] == [{"protocol": "TCP", "port": redis_port}]
        assert rule["from"], "an empty from admits every source"
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, peer  # no namespaceSelector, no ipBlock
            allowed |= {n for n, labels in pods.items() if _selects(peer["podSelector"], labels)}
    assert allowed == {"stockade-api", "stockade-worker"}


def test_k8s_keda_reads_the_queue_with_the_password_and_only_its_operator_is_let_in() -> None:
    docs = _k8s_documents(K8S / "overlays" / "keda")
    by_kind = {d["kind"]: d for d in docs if d["kind"] in ("ScaledObject", "TriggerAuthentication")}
    (trigger,) = by_kind["ScaledObject"]["spec"]["triggers"]
    auth = by_kind["TriggerAuthentication"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": SECRET, "key": "password"}
    ]
    policies = _redis_policies(docs)
    assert len(policies) == 2  # the base's, and KEDA's
    (keda,) = [p for p in policies if p["metadata"]["name"] != "redis"]
    ((peer,),) = [rule["from"] for rule in keda["spec"]["ingress"]]
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}},
    }
    for overlay in ("hpa", "cgroup-v1"):
        assert len(_redis_policies(_k8s_documents(K8S / "overlays" / overlay))) == 1


def test_k8s_autoscaling_watches_the_celery_queue() -> None:
    from service.config import Config
    from worker.jobs.settings import QUEUE

    scaled = yaml.safe_load((K8S / "overlays" / "keda" / "scaledobject.yaml").read_text())
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUE == Config().queue
    assert scaled["spec"]["scaleTargetRef"]["name"] == "stockade-worker"
    hpa = yaml.safe_load((K8S / "overlays" / "hpa" / "hpa.yaml").read_text())
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    assert f'"{metric}"' in (ROOT / "service" / "metrics.py").read_text()


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (kubectl kustomize builds offline)")
    return kubectl


@pytest.mark.parametrize("overlay", ["", "overlays/keda", "overlays/hpa", "overlays/cgroup-v1"])
def test_kustomize_builds(overlay: str, tmp_path: Path) -> None:
    """In a copy holding the password file an operator makes: the Secret carries it, under
    the name every reference uses."""
    kubectl = _kubectl()
    shutil.copytree(K8S, tmp_path / "k8s")
    (tmp_path / "k8s" / "base" / PASSWORD_FILE).write_text("password=c0ffee\n")
    cmd = [kubectl, "kustomize", str(tmp_path / "k8s" / overlay)]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    worker = _workloads(docs)["stockade-worker"]
    context = worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert context.get("privileged") is (overlay == "overlays/cgroup-v1")
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        "stockade"
    }
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == SECRET
    assert base64.b64decode(secret["data"]["password"]) == b"c0ffee"
    for name in ("stockade-api/api", "stockade-worker/worker", "redis/redis"):
        assert {"name": PASSWORD, "valueFrom": SECRET_REF} in _container(docs, name)["env"]
    assert len(_redis_policies(docs)) == (2 if overlay == "overlays/keda" else 1)


def test_kustomize_refuses_to_build_without_the_password_file(tmp_path: Path) -> None:
    kubectl = _kubectl()
    shutil.copytree(K8S, tmp_path / "k8s")
    (tmp_path / "k8s" / "base" / PASSWORD_FILE).unlink(missing_ok=True)
    r = subprocess.run([kubectl, "kustomize", str(tmp_path / "k8s")], capture_output=True)
    assert r.returncode != 0 and PASSWORD_FILE in r.stderr.decode()


# --- systemd -----------------------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


def test_systemd_units_say_how_they_run() -> None:
    worker, api, redis = (
        _unit(f"stockade-{n}.service")["Service"] for n in ("worker", "api", "redis")
    )
    assert worker["ExecStart"].split()[1:3] == ["worker", "--workers"]
    assert worker["Delegate"] == "yes" and worker["User"] == "root"
    assert api["ExecStart"].split()[1] == "serve"
    assert api["DynamicUser"] == "yes" and api["CapabilityBoundingSet"] == ""
    for service in (worker, api):
        assert service["EnvironmentFile"] == "/etc/stockade/stockade.env"
    assert "--appendonly yes" in redis["ExecStart"]


def test_systemd_worker_keeps_only_the_documented_capabilities() -> None:
    worker = _unit("stockade-worker.service")["Service"]
    bounding = worker["CapabilityBoundingSet"].split()
    assert sorted(bounding) == sorted(f"CAP_{c}" for c in always_capabilities())
    assert worker["AmbientCapabilities"] == ""


PLACEHOLDER = "@REDIS_PASSWORD@"


def test_systemd_redis_requires_the_password_the_environment_file_gives(tmp_path: Path) -> None:
    """redis.conf's requirepass and stockade.env's URL ship with one placeholder, which the
    Redis unit refuses to start with; filled in, Redis (run for real, on a socket) takes
    the URL's password and nothing else."""
    redis = _unit("stockade-redis.service")["Service"]
    argv = shlex.split(redis["ExecStart"])
    assert argv[:2] == ["/usr/bin/redis-server", "/etc/stockade/redis.conf"]
    conf = (SYSTEMD / "redis.conf").read_text()
    assert f"requirepass {PLACEHOLDER}" in conf.splitlines()
    lines = (SYSTEMD / "stockade.env").read_text().splitlines()
    env = dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))
    assert urlsplit(env["STOCKADE_REDIS_URL"]).password == PLACEHOLDER
    check = shlex.split(redis["ExecStartPre"])
    assert check[:2] == ["/bin/sh", "-c"]
    mine = tmp_path / "redis.conf"
    script = check[2].replace("/etc/stockade/redis.conf", str(mine))
    for text, starts in ((conf, False), (conf.replace(PLACEHOLDER, "5eed"), True)):
        mine.write_text(text)
        r = subprocess.run([*check[:2], script], capture_output=True, text=True, timeout=30)
        assert (r.returncode == 0) is starts, r.stderr
    sock = tmp_path / "redis.sock"
    server = [_redis_server(), str(mine), "--port", "0", "--unixsocket", str(sock)]
    proc = subprocess.Popen([*server, "--dir", str(tmp_path), "--save", ""])
    try:
        _wait_for_socket(sock, proc)
        password = urlsplit(env["STOCKADE_REDIS_URL"].replace(PLACEHOLDER, "5eed")).password
        assert _ping(sock, password) and not _ping(sock, None) and not _ping(sock, PLACEHOLDER)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_systemd_environment_file_names_real_settings(known: set[str]) -> None:
    # Commented lines are suggestions, and must be real names too.
    names = set(NAME.findall((SYSTEMD / "stockade.env").read_text()))
    assert "STOCKADE_REDIS_URL" in names
    assert names <= known, names - known


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    stockade = Path(sys.executable).parent / "stockade"
    if not stockade.exists():
        pytest.skip("no stockade entry point beside the test's python to stand in for /opt")
    units = []
    for unit in SYSTEMD.glob("*.service"):
        text = unit.read_text().replace("/opt/stockade/.venv/bin/stockade", str(stockade))
        if "/usr/bin/redis-server" in text and not os.path.exists("/usr/bin/redis-server"):
            continue
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    assert len(units) >= 2
    r = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values, and only says so: those count too.
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if str(tmp_path) in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


# --- Dockerfile --------------------------------------------------------------------------------


def dockerfile_stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """{stage: [(INSTRUCTION, arguments)]}, continuation lines joined, comments dropped."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    logical = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    )
    for line in logical.splitlines():
        if not line.strip():
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            words = args.split()
            current = []
            stages[words[-1] if len(words) == 3 and words[1].upper() == "AS" else words[0]] = (
                current
            )
        current.append((instruction.upper(), args.strip()))
    return stages


def test_dockerfile_stages_users_and_health_checks() -> None:
    text = DOCKERFILE.read_text()
    stages = dockerfile_stages(text)
    assert list(stages) == ["base", "build", "worker", "api"]  # api last: the default target
    assert stages["base"][0][1].startswith("${DEBIAN_IMAGE}")
    assert "ARG DEBIAN_IMAGE=debian:bookworm-slim" in text
    api = dict(stages["api"])
    assert api["USER"].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in api and "stockade-healthcheck" in api["HEALTHCHECK"]
    worker = dict(stages["worker"])
    assert "USER" not in worker  # root: it starts boxes
    assert "stockade-healthcheck" in worker["HEALTHCHECK"]
    build = " ".join(args for inst, args in stages["build"] if inst == "RUN")
    assert "--require-hashes -r requirements.lock" in build
    assert "install --no-cache-dir --no-deps --no-build-isolation ." in build


def test_dockerfile_build_stage_installs_the_lock_for_real(tmp_path: Path) -> None:
    """The build stage's venv steps run as written, on Debian's python3 (the image's), in a
    copy of what its COPY lines bring: the lock installs with its hashes and the project on
    top needs nothing the lock lacks."""
    stage = dockerfile_stages(DOCKERFILE.read_text())["build"]
    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    steps = []
    for instruction, args in stage:
        if instruction == "COPY" and not args.startswith("--from"):
            *sources, dest = args.split()
            if dest.startswith("/"):
                continue  # the image's own bin/, not part of the venv
            for source in sources:
                target = src / dest / Path(source).name if dest.endswith("/") else src / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(ROOT / source, target)
        elif instruction == "RUN" and "VIRTUAL_ENV" in args:
            steps.append(args)
    assert len(steps) == 2, steps  # the lock, then the project
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv}/bin:/usr/bin:/bin"}
    env.pop("PYTHONPATH", None)
    for step in steps:
        r = subprocess.run(
            ["bash", "-ec", step.replace("python3 -m venv", "/usr/bin/python3 -m venv")],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run(
        [str(venv / "bin" / "stockade"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "usage" in r.stdout.lower(), r.stdout + r.stderr


def test_dockerfile_installs_what_the_makefile_and_languages_need() -> None:
    text = DOCKERFILE.read_text()
    assert "deploy/languages-packages.txt" in text
    makefile = (ROOT / "Makefile").read_text()
    block = re.search(r"APT_PACKAGES :=(.*?)\n\S", makefile, re.S)
    assert block is not None
    # Each one is installed or named in the comment that says why it is left out.
    for package in block.group(1).replace("\\", " ").split():
        assert re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", text), package


def test_dockerfile_copies_only_what_exists_and_travels() -> None:
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in dockerfile_stages(DOCKERFILE.read_text()).values():
        for instruction, args in stage:
            if instruction != "COPY" or args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is ignored by the build"


# --- The health check script -------------------------------------------------------------------


def _healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "healthcheck", DEPLOY / "docker" / "healthcheck.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_worker_health_needs_a_node_of_this_host() -> None:
    replied = _healthcheck().replied
    assert replied([{"stockade-1@abc": {"ok": "pong"}}], "abc")
    assert not replied([{"stockade-1@abcd": {"ok": "pong"}}], "abc")
    assert not replied([], "abc")


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("status", [200, 503])
def test_api_health_follows_the_health_endpoint(status: int) -> None:
    handler = type("H", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/v1/health"
        problem = _healthcheck().check_api(url)
    finally:
        server.shutdown()
        server.server_close()
    assert (problem is None) is (status == 200)


# --- The capability list, measured ---------------------------------------------------------------


@pytest.mark.privileged
def test_boxes_run_with_only_the_documented_capabilities() -> None:
    capsh = shutil.which("capsh")
    stockade = Path(sys.executable).parent / "stockade"
    if os.geteuid() != 0:
        pytest.skip("needs root: the boxes are made by root with a reduced bounding set")
    if capsh is None or not stockade.exists():
        pytest.skip("needs capsh (Debian libcap2-bin) and the stockade entry point")
    keep = {f"cap_{c.lower()}" for c in always_capabilities()}
    bounding = subprocess.run([capsh, "--print"], capture_output=True, text=True).stdout
    line = next(ln for ln in bounding.splitlines() if ln.startswith("Bounding set ="))
    drop = [c for c in line.partition("=")[2].strip().split(",") if c and c not in keep]
    script = (
        f"{stockade} run --json -- /usr/bin/python3 -c 'print(6*7)';"
        f"{stockade} run --json --wall-time 1 -- /bin/sleep 5"
    )
    r = subprocess.run(
        [capsh, f"--drop={','.join(drop)}", "--", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    statuses = re.findall(r'"status": "([A-Z]+)"', r.stdout)
    assert statuses == ["OK", "TO"], r.stdout + r.stderr
