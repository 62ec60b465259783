"""Container files, checked statically (no container engine): docker-compose.yml, the
Dockerfile, .dockerignore, the container's exporter config and the multi-region agent config.

`docker-compose config` (Debian's docker-compose 1.29) and `promtool` are used when installed.
What only a running engine can show (the image builds, the stack comes up healthy) is in
tests/test_container_engine.py.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from speed_kings.catalog import load_catalog
from speed_kings.config import load_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKER_CONFIG = ROOT / "config/speed-kings.docker.yaml"
EXAMPLE_CONFIG = ROOT / "config/speed-kings.example.yaml"
REGION_CONFIG = ROOT / "config/prometheus/prometheus-region.yml"
DEPLOYMENT_DOC = ROOT / "docs/deployment.md"

DEFAULT_SERVICES = {"exporter", "prometheus", "alertmanager", "grafana"}
PROFILE = "multi-region"
PROFILE_SERVICES = {
    "exporter-eu",
    "exporter-us",
    "prometheus-eu",
    "prometheus-us",
    "victoriametrics",
}
REGIONS = {"eu", "us"}
STATE_DIR = "/var/lib/speed-kings"
CONFIG_IN_CONTAINER = "/etc/speed-kings/config.yaml"
DEMO_COMMAND = ["run", "--demo", "--listen", "0.0.0.0:9464"]
CONFIG_COMMAND = ["run", "--config", CONFIG_IN_CONTAINER, "--listen", "0.0.0.0:9464"]
DRAIN_SECONDS = 30  # DaemonOptions.drain_seconds: SIGTERM lets probes finish this long

DOCKER_COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None, reason="docker-compose not installed (Debian package docker-compose)"
)
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)


# --- compose helpers -----------------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${VAR}` / `${VAR:-default}` substitution (the forms this file uses)."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(3)
            return env.get(name) or (m.group(2) or "")

        return _VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return dict(interpolate(raw, env or {}))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith(("./", "../", "/", "~"))


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    result = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            parts = entry.split(":")
            mode = parts[2] if len(parts) > 2 else "rw"
            result.append(Mount(parts[0], parts[1], "ro" in mode.split(",")))
        else:
            result.append(
                Mount(entry.get("source", ""), entry["target"], bool(entry.get("read_only")))
            )
    return result


def mount_at(service: Mapping[str, Any], target: str) -> Mount:
    found = [m for m in mounts(service) if m.target == target]
    assert len(found) == 1, f"expected one mount at {target}, got {mounts(service)}"
    return found[0]


def command_of(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def flag(command: list[str], name: str) -> str:
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"{name}=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {command}"
    return values[0]


def published(service: Mapping[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    result = {}
    for entry in service.get("ports", []):
        parts = str(entry).split("/")[0].split(":")
        result[int(parts[-1])] = int(parts[-2])
    return result


def health_test(service: Mapping[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def networks(service: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    nets = service.get("networks", ["default"])
    if isinstance(nets, list):
        return {name: {} for name in nets}
    return {name: (spec or {}) for name, spec in nets.items()}


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(number) * units[unit]
    return total


# --- docker-compose.yml: structure ---------------------------------------------------------


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == DEFAULT_SERVICES | PROFILE_SERVICES
    for name in DEFAULT_SERVICES:
        assert "profiles" not in services[name], f"{name} must start without a profile"
    for name in PROFILE_SERVICES:
        assert services[name].get("profiles") == [PROFILE], name


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            assert service["build"]["context"] == ".", name
            assert image == "speed-kings:local", name
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag and tag not in ("", "latest"), f"{name}: unpinned {image}"
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not a version tag"


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert isinstance(test, list) and test[0] == "CMD", name
        assert "127.0.0.1" in " ".join(test), name


def test_published_ports_default_to_loopback() -> None:
    for name, service in load_compose()["services"].items():
        for entry in service.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), f"{name}: {entry}"
    exposed = load_compose({"SPEED_KINGS_BIND_ADDRESS": "0.0.0.0"})["services"]
    assert exposed["grafana"]["ports"] == ["0.0.0.0:3000:3000"]


def test_bind_mounted_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for mount in mounts(service):
            if not mount.is_bind:
                assert mount.source in (load_compose().get("volumes") or {}), (name, mount)
                continue
            path = (ROOT / mount.source).resolve()
            assert path.is_relative_to(ROOT), f"{name}: {mount.source} is outside the repo"
            assert path.exists(), f"{name}: {mount.source} does not exist in the repo"
            if Path(mount.target).suffix in (".yml", ".yaml"):
                assert path.is_file(), f"{name}: {mount.source} must be a file"
            else:
                assert path.is_dir(), f"{name}: {mount.source} must be a folder"
            assert mount.read_only, f"{name}: mount {mount.source} read-only"


# --- the exporter ----------------------------------------------------------------------------


def test_exporter_defaults_to_demo_like_the_image(services: dict[str, dict[str, Any]]) -> None:
    assert command_of(services["exporter"]) == DEMO_COMMAND
    assert dockerfile().final.exec_form("CMD") == DEMO_COMMAND
    for region in REGIONS:
        assert command_of(services[f"exporter-{region}"]) == DEMO_COMMAND


def test_exporter_service(services: dict[str, dict[str, Any]]) -> None:
    exporter = services["exporter"]
    assert published(exporter) == {9464: 9464}
    assert "http://127.0.0.1:9464/healthz" in health_test(exporter)
    assert mount_at(exporter, STATE_DIR).source == "speed-kings-state"
    config = mount_at(exporter, CONFIG_IN_CONTAINER)
    assert config.source == "./config/speed-kings.docker.yaml" and config.read_only
    # Longer than the drain, so SIGTERM's drain is never cut short by SIGKILL.
    assert seconds(exporter["stop_grace_period"]) > DRAIN_SECONDS
    assert exporter["read_only"] is True and "/tmp" in exporter["tmpfs"]
    assert exporter["cap_drop"] == ["ALL"]


def test_exporter_receives_every_catalog_key_variable(
    services: dict[str, dict[str, Any]],
) -> None:
    env = environment(services["exporter"])
    expected = set()
    for entry in load_catalog().providers.values():
        for name in entry.key_env_names:
            expected |= {name, f"{name}_FILE"}
        if entry.base_url_env:
            expected.add(entry.base_url_env)
    assert expected <= set(env), f"not passed to the exporter: {sorted(expected - set(env))}"
    # Unset in the shell and .env: empty, which the exporter treats as not set.
    assert all(env[name] == "" for name in expected)
    # Only the exporter that runs a real config gets keys.
    for region in REGIONS:
        assert not set(environment(services[f"exporter-{region}"])) & expected


def test_command_and_keys_switch_by_environment() -> None:
    env = {"SPEED_KINGS_COMMAND": shlex.join(CONFIG_COMMAND), "GROQ_API_KEY": "gsk_test"}
    exporter = load_compose(env)["services"]["exporter"]
    assert command_of(exporter) == CONFIG_COMMAND
    assert environment(exporter)["GROQ_API_KEY"] == "gsk_test"
    own = load_compose({"SPEED_KINGS_CONFIG": "./config/my.yaml"})["services"]["exporter"]
    assert mount_at(own, CONFIG_IN_CONTAINER).source == "./config/my.yaml"


def test_env_example_switches_to_the_docker_config() -> None:
    """.env.example's commented SPEED_KINGS_COMMAND is the config-mode command."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    commands = [ln.split("=", 1)[1] for ln in lines if ln.startswith("#SPEED_KINGS_COMMAND=")]
    assert [shlex.split(c) for c in commands] == [CONFIG_COMMAND]
    active = [ln.split("=", 1)[0] for ln in lines if ln and not ln.startswith("#")]
    assert "SPEED_KINGS_COMMAND" not in active, "demo must stay the default"
    assert not [name for name in active if name.endswith("_API_KEY")]


# --- the container's exporter config ---------------------------------------------------------


def test_docker_config_is_valid_and_uses_the_volume() -> None:
    config = load_config(DOCKER_CONFIG)
    assert str(config.state_path(DOCKER_CONFIG)) == STATE_DIR
    assert config.listen_address == ("0.0.0.0", 9464)
    assert config.log.format == "json"


def test_docker_config_follows_the_example() -> None:
    """The container config is the example minus what cannot work in a container (Ollama on
    localhost): same comparisons, budget, limits."""
    docker = yaml.safe_load(DOCKER_CONFIG.read_text(encoding="utf-8"))
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    example_comparisons = {c["name"]: c for c in example["comparisons"]}
    for comparison in docker["comparisons"]:
        assert comparison == example_comparisons[comparison["name"]]
    for name, settings in docker["providers"].items():
        assert settings == example["providers"][name], name
    for key in ("budget", "rate_limits", "throttling", "defaults", "prompts", "timezone"):
        assert docker.get(key) == example.get(key), key


# --- Prometheus, Alertmanager, Grafana ---------------------------------------------------------


def test_prometheus_paths_match_its_config(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    command = command_of(prometheus)
    config_path = flag(command, "--config.file")
    assert mount_at(prometheus, config_path).source == "./config/prometheus/prometheus.yml"
    assert mount_at(prometheus, flag(command, "--storage.tsdb.path")).source == "prometheus-data"
    rules = mount_at(prometheus, "/etc/prometheus/rules")
    assert rules.source == "./config/prometheus/rules"
    assert published(prometheus) == {9090: 9090}

    config_file = ROOT / "config/prometheus/prometheus.yml"
    assert config_file.is_file(), "config/prometheus/prometheus.yml is missing"
    config = yaml.safe_load(config_file.read_text("utf-8"))
    for pattern in config["rule_files"]:
        assert pattern.startswith(rules.target + "/"), pattern
    assert list((ROOT / rules.source).glob("*.yml")), "no rule files to load"
    targets = {
        (job["job_name"], target)
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for target in sc["targets"]
    }
    assert ("speed-kings", "exporter:9464") in targets
    am_targets = [
        target
        for am in config["alerting"]["alertmanagers"]
        for sc in am.get("static_configs", [])
        for target in sc["targets"]
    ]
    assert am_targets == ["alertmanager:9093"]
    assert published(services["alertmanager"]) == {9093: 9093}


def test_alertmanager_paths(services: dict[str, dict[str, Any]]) -> None:
    alertmanager = services["alertmanager"]
    command = command_of(alertmanager)
    config = mount_at(alertmanager, flag(command, "--config.file"))
    assert config.source == "./config/alertmanager/alertmanager.yml"
    assert mount_at(alertmanager, flag(command, "--storage.path")).source == "alertmanager-data"


def test_grafana(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    assert mount_at(grafana, "/etc/grafana/provisioning").source == (
        "./config/grafana/provisioning"
    )
    assert mount_at(grafana, "/var/lib/grafana/dashboards").source == "./dashboards"
    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "admin"  # default, documented as to change
    changed = load_compose({"GRAFANA_ADMIN_PASSWORD": "s3cret"})["services"]["grafana"]
    assert environment(changed)["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret"
    assert published(grafana) == {3000: 3000}

    # The provisioned dashboard provider reads the folder the dashboards are mounted in.
    provisioning = ROOT / "config/grafana/provisioning"
    for kind in ("dashboards", "datasources"):
        assert (provisioning / kind).is_dir(), f"config/grafana/provisioning/{kind} is missing"
    paths = []
    for file in sorted((provisioning / "dashboards").glob("*.y*ml")):
        for provider in yaml.safe_load(file.read_text("utf-8")).get("providers", []):
            paths.append(provider["options"]["path"])
    assert "/var/lib/grafana/dashboards" in paths
    urls = []
    for file in sorted((provisioning / "datasources").glob("*.y*ml")):
        for source in yaml.safe_load(file.read_text("utf-8")).get("datasources", []):
            urls.append(source.get("url"))
    assert "http://prometheus:9090" in urls


# --- profile multi-region ---------------------------------------------------------------------


def test_multi_region_topology(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    region_config = yaml.safe_load(REGION_CONFIG.read_text(encoding="utf-8"))
    (job,) = region_config["scrape_configs"]
    assert job["job_name"] == "speed-kings"
    assert job["static_configs"] == [{"targets": ["exporter:9464"]}]
    assert region_config["global"]["external_labels"] == {"region": "${SPEED_KINGS_REGION}"}
    (remote,) = region_config["remote_write"]
    assert remote["url"] == "http://victoriametrics:8428/api/v1/write"
    store = services["victoriametrics"]
    assert "-httpListenAddr=:8428" in command_of(store)

    seen_regions = set()
    for region in REGIONS:
        agent = services[f"prometheus-{region}"]
        command = command_of(agent)
        features = flag(command, "--enable-feature").split(",")
        assert {"agent", "expand-external-labels"} <= set(features)
        config = mount_at(agent, flag(command, "--config.file"))
        assert config.source == "./config/prometheus/prometheus-region.yml"
        assert mount_at(agent, flag(command, "--storage.agent.path")).source.endswith("-wal")
        seen_regions.add(environment(agent)["SPEED_KINGS_REGION"])

        # One network per region, on which `exporter` is this region's exporter only.
        (net,) = networks(agent)
        assert net == f"vantage-{region}" and net in compose["networks"]
        exporter_nets = networks(services[f"exporter-{region}"])
        assert exporter_nets == {net: {"aliases": ["exporter"]}}
        holders = [name for name, svc in services.items() if net in networks(svc)]
        assert sorted(holders) == sorted(
            [f"exporter-{region}", f"prometheus-{region}", "victoriametrics"]
        )
        assert net in networks(store)
        assert "victoriametrics" in agent["depends_on"]
    assert seen_regions == REGIONS
    assert "default" in networks(store) and "default" in networks(services["grafana"])
    hosts = [published(services[f"exporter-{r}"])[9464] for r in sorted(REGIONS)]
    assert len(set(hosts) | {9464}) == len(REGIONS) + 1


@needs_promtool
def test_region_config_passes_promtool() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", "--agent", str(REGION_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- docker-compose config (the real parser) ---------------------------------------------------


def run_compose(
    *args: str, env: Mapping[str, str] | None = None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    assert DOCKER_COMPOSE is not None
    env_file = tmp_path / "compose.env"  # hermetic: never the developer's own .env
    env_file.write_text("", encoding="utf-8")
    return subprocess.run(
        [DOCKER_COMPOSE, "--env-file", str(env_file), *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_compose
@pytest.mark.parametrize("profile", [[], ["--profile", PROFILE]], ids=["default", PROFILE])
def test_docker_compose_config_validates(profile: list[str], tmp_path: Path) -> None:
    result = run_compose(*profile, "-f", "docker-compose.yml", "config", "-q", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


@needs_compose
def test_docker_compose_resolves_the_key_switch(tmp_path: Path) -> None:
    env = {"SPEED_KINGS_COMMAND": shlex.join(CONFIG_COMMAND), "GROQ_API_KEY": "gsk_test"}
    result = run_compose("-f", "docker-compose.yml", "config", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    exporter = yaml.safe_load(result.stdout)["services"]["exporter"]
    assert command_of(exporter) == CONFIG_COMMAND
    assert environment(exporter)["GROQ_API_KEY"] == "gsk_test"


def doc_override() -> str:
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    blocks: list[str] = re.findall(
        r"```yaml\n(# docker-compose\.override\.yml\n.*?)```", text, re.S
    )
    assert len(blocks) == 1, "docs/deployment.md: one docker-compose.override.yml example"
    return blocks[0]


def test_documented_secrets_override_points_at_the_secrets() -> None:
    override = yaml.safe_load(doc_override())
    exporter = override["services"]["exporter"]
    assert command_of(exporter) == CONFIG_COMMAND
    for name in exporter["secrets"]:
        assert name in override["secrets"]
        variable = f"{name.upper()}_FILE"
        assert environment(exporter)[variable] == f"/run/secrets/{name}"
        assert variable in environment(load_compose()["services"]["exporter"])


@needs_compose
def test_docker_compose_accepts_the_documented_secrets_override(tmp_path: Path) -> None:
    override = tmp_path / "docker-compose.override.yml"
    override.write_text(doc_override(), encoding="utf-8")
    # Relative paths in both files resolve against the project directory, as with the real
    # override file beside docker-compose.yml.
    result = run_compose(
        "--project-directory",
        str(ROOT),
        "-f",
        str(COMPOSE_FILE),
        "-f",
        str(override),
        "config",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    exporter = resolved["services"]["exporter"]
    assert environment(exporter)["GROQ_API_KEY_FILE"] == "/run/secrets/groq_api_key"
    assert {s["source"] if isinstance(s, dict) else s for s in exporter["secrets"]} == {
        "groq_api_key",
        "cerebras_api_key",
    }
    assert resolved["secrets"]["groq_api_key"]["file"] == str(ROOT / "secrets/groq_api_key")


# --- Dockerfile ---------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"{keyword}: {found}"
        return found[0]

    def exec_form(self, keyword: str) -> list[str]:
        value = yaml.safe_load(self.one(keyword))  # a JSON array is YAML
        assert isinstance(value, list), f"{keyword} must be in exec (JSON) form"
        return [str(v) for v in value]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def dockerfile() -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue  # comments and blank lines, also inside continuations
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before FROM, not {keyword}"
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def test_dockerfile_is_multi_stage_on_python_slim() -> None:
    df = dockerfile()
    assert len(df.stages) >= 2
    assert df.stages[0].name == "builder"
    assert all(stage.base == "python:3.11-slim" for stage in df.stages)
    build = " ".join(df.stages[0].all("RUN"))
    assert "/opt/venv" in build and "pip install" in build
    # A base without venv support (Debian's python3) gets python3-venv, only then.
    assert "if ! command -v python3" in build and "python3-venv" in build
    copies = df.stages[0].all("COPY")
    assert copies == ["pyproject.toml README.md ./", "exporter/ exporter/"]


def test_dockerfile_runtime_stage_is_small_and_non_root() -> None:
    final = dockerfile().final
    assert final.all("COPY") == ["--from=builder /opt/venv /opt/venv"]
    runs = " ".join(final.all("RUN"))
    for tool in ("gcc", "g++", "build-essential", "make ", "python3-dev", "pip install"):
        assert tool not in runs, f"runtime stage installs {tool.strip()}"
    user = final.one("USER").split(":")[0]
    assert user not in ("0", "root") and user == "10001"
    assert "--uid 10001" in runs and "speedkings" in runs
    assert final.one("WORKDIR") == "/app"
    assert yaml.safe_load(final.one("VOLUME")) == [STATE_DIR]
    assert f"chown 10001:10001 {STATE_DIR}" in runs
    # USER after the volume's chown, and the chown before VOLUME (later changes are lost).
    keywords = [kw for kw, _ in final.instructions]
    assert keywords.index("VOLUME") < keywords.index("USER")


def test_dockerfile_runtime_contract() -> None:
    final = dockerfile().final
    assert final.one("EXPOSE") == "9464"
    health = final.one("HEALTHCHECK")
    assert "CMD" in health and "python" in health and "curl" not in health
    assert "http://127.0.0.1:9464/healthz" in health
    assert final.one("STOPSIGNAL") == "SIGTERM"
    assert final.exec_form("ENTRYPOINT") == ["speed-kings"]
    assert final.exec_form("CMD") == DEMO_COMMAND
    assert "PATH=/opt/venv/bin:$PATH" in " ".join(final.all("ENV"))


def test_dockerfile_labels_and_version() -> None:
    final = dockerfile().final
    labels = " ".join(final.all("LABEL"))
    for key in ("title", "description", "version", "licenses", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert f"VERSION={pyproject['project']['version']}" in final.all("ARG")


def test_healthchecks_have_no_spaces_inside_arguments(services: dict[str, dict[str, Any]]) -> None:
    """podman's Docker-compatible API (docker-compose on podman 4) joins a CMD healthcheck
    with spaces and splits it again: an argument holding a space breaks it there."""
    tests = {name: service["healthcheck"]["test"] for name, service in services.items()}
    image_test = yaml.safe_load(dockerfile().final.one("HEALTHCHECK").split("CMD", 1)[1])
    tests["Dockerfile"] = ["CMD", *image_test]
    for name, test in tests.items():
        assert test[0] == "CMD", name
        assert not [arg for arg in test if " " in arg], f"{name}: {test}"


def test_compose_healthcheck_matches_the_image(services: dict[str, dict[str, Any]]) -> None:
    image_test = yaml.safe_load(dockerfile().final.one("HEALTHCHECK").split("CMD", 1)[1])
    assert services["exporter"]["healthcheck"]["test"] == ["CMD", *image_test]


# --- .dockerignore ---------------------------------------------------------------------------


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [path] + [str(p) for p in Path(path).parents if str(p) != "."]
        if pattern.startswith("**/"):
            tail = pattern[3:]
            hit = any(fnmatch.fnmatch(Path(c).name, tail) for c in candidates)
            hit = hit or any(fnmatch.fnmatch(c, tail) for c in candidates)
        else:
            hit = any(fnmatch.fnmatch(c, pattern) for c in candidates)
        if hit:
            result = not negate
    return result


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("pyproject.toml", "README.md", "exporter/speed_kings/cli.py"):
        assert not ignored(needed, patterns), needed
    for package_file in (ROOT / "exporter").rglob("*"):
        relative = str(package_file.relative_to(ROOT))
        if package_file.is_file() and "__pycache__" not in relative and ".egg-info" not in relative:
            assert not ignored(relative, patterns), relative
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "secrets/groq_api_key",
        "state/ledger.db",
        "config/state/ledger.db",
        ".pytest_cache/v",
        ".mypy_cache/x",
        ".ruff_cache/x",
        ".hypothesis/x",
        "exporter/speed_kings/__pycache__/cli.cpython-311.pyc",
        "exporter/speed_kings.egg-info/PKG-INFO",
        "tests/test_containers.py",
    ):
        assert ignored(dropped, patterns), dropped


# --- docs ----------------------------------------------------------------------------------------


def test_deployment_doc_covers_the_stack(services: dict[str, dict[str, Any]]) -> None:
    text = DEPLOYMENT_DOC.read_text(encoding="utf-8")
    for name, service in services.items():
        assert f"`{name}`" in text or name in text, name
        if "build" not in service:
            assert service["image"] in text, f"pinned image {service['image']} not documented"
    for port in (9464, 9090, 9093, 3000, 8428, 9465, 9466):
        assert f"127.0.0.1:{port}" in text, port
    assert "docker compose --profile multi-region up" in text
