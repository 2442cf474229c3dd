"""The deploy files: they parse, every service and container is complete, the worker's
privileges are the documented ones, and every STOCKADE_* they set is a real setting."""

from __future__ import annotations

import configparser
import dataclasses
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

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


def test_compose_redis_keeps_an_aof_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


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
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
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


@pytest.mark.parametrize("overlay", ["", "overlays/keda", "overlays/hpa", "overlays/cgroup-v1"])
def test_kustomize_builds(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (kubectl kustomize builds offline)")
    r = subprocess.run([kubectl, "kustomize", str(K8S / overlay)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    worker = _workloads(docs)["stockade-worker"]
    context = worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert context.get("privileged") is (overlay == "overlays/cgroup-v1")
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        "stockade"
    }


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
