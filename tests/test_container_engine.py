"""The container path for real (issue 7): the image built from the shipped Dockerfile and the
shipped docker-compose.yml, run by a real container engine (podman).

No public registry is reachable here, so `scripts/container_images.sh` installs podman from
Debian, builds a Debian base image with debootstrap and stand-ins for the images the compose
file names (python:3.11-slim, Prometheus, Alertmanager, VictoriaMetrics, from Debian's
packages). Grafana has no stand-in and is never started; its dashboards are proven against a
real Prometheus in test_stack_e2e.py.

Everything runs on networks this module creates as `internal` (no route out of the machine;
builds reach only the package mirrors) and is removed afterwards, on success or failure; a
crashed earlier run's leftovers (names starting `sk-ctest-<pid>-` of a dead pid) are removed
first. Skipped only when CI is unset and no engine can be installed; with CI=true that fails.
Measurements (build times, image sizes, stop time) are printed in pytest's summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from tests.procs import parse_metrics, sample

ROOT = Path(__file__).resolve().parents[1]
IMAGES_SCRIPT = ROOT / "scripts/container_images.sh"
COMPOSE_FILE = ROOT / "docker-compose.yml"
RULES_DIR = ROOT / "config/prometheus/rules"

CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
PREFIX = "sk-ctest-"
RUN_ID = f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}"

BASE_IMAGE = "localhost/debian-base:bookworm"
# The image compose runs (`image: speed-kings:local`), built on python:3.11-slim (here the
# stand-in); and the same Dockerfile on the bare Debian base (python3 installed by apt).
IMAGES = {
    "python-slim": ("localhost/speed-kings:local", None),
    "debian-base": ("localhost/speed-kings:local-debian-base", BASE_IMAGE),
}
UID = 10001
STATE_DIR = "/var/lib/speed-kings"
DEFAULT_SERVICES = ("exporter", "prometheus", "alertmanager")  # grafana: no stand-in
REGION_SERVICES = (
    "exporter-eu",
    "exporter-us",
    "prometheus-eu",
    "prometheus-us",
    "victoriametrics",
)
TEST_ALERT = "SpeedKingsContainerTestAlert"
FETCH = (
    "import sys,urllib.request as u;"
    "sys.stdout.write(u.urlopen(sys.argv[1],timeout=10).read().decode())"
)


# --- running things --------------------------------------------------------------------------


def run(
    cmd: list[str],
    *,
    timeout: float = 120,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The command's result; with `check`, an AssertionError quoting its output on failure."""
    done = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"`{shlex.join(cmd)}` exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
    return done


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    return run(["podman", *args], timeout=timeout, check=check).stdout


class NotYet(Exception):
    """A request into a container that failed: polling tries again."""


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 1.0) -> Any:
    """Polls until `predicate()` is truthy and returns it; fails after `timeout` seconds.
    `NotYet` counts as not yet; any other exception fails at once."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            value = predicate()
        except NotYet as exc:
            value, last = None, f"; last error: {exc}"
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{last}")
        time.sleep(every)


def inspect(name: str, kind: str = "container") -> dict[str, Any]:
    docs: list[dict[str, Any]] = json.loads(podman(kind, "inspect", name))
    return docs[0]


def logs(name: str) -> str:
    done = run(["podman", "logs", "--tail", "40", name], check=False)
    return (done.stdout + done.stderr)[-4000:]


def healthy(name: str) -> bool:
    """`podman healthcheck run`: this machine has no systemd to run health checks on a timer."""
    state = inspect(name)["State"]
    assert state["Running"], f"{name} is not running ({state['Status']}):\n{logs(name)}"
    return run(["podman", "healthcheck", "run", name], check=False).returncode == 0


def wait_healthy(name: str, timeout: float = 90) -> None:
    wait_for(lambda: healthy(name), timeout=timeout, what=f"{name} healthy")


def fetch(container: str, url: str, *, python: bool = False) -> str:
    """GET `url` from inside `container` (the stand-ins have wget, the exporter python)."""
    client = ["/opt/venv/bin/python", "-c", FETCH] if python else ["wget", "-qO-"]
    done = run(["podman", "exec", container, *client, url], timeout=30, check=False)
    if done.returncode != 0:
        raise NotYet(f"GET {url} in {container}: exit {done.returncode} {done.stderr[-2000:]}")
    return done.stdout


def fetch_json(container: str, url: str) -> Any:
    text = fetch(container, url)
    try:
        return json.loads(text)
    except ValueError:
        raise NotYet(f"GET {url} in {container}: not JSON: {text[:2000]}") from None


def _owner_pid(name: str) -> int | None:
    match = re.match(rf"{re.escape(PREFIX)}(\d+)-", name)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_resources(should_remove: Callable[[str], bool]) -> list[str]:
    """Containers (with their anonymous volumes), then networks, then volumes, by name."""
    removed = []
    kinds = (
        (["ps", "-a", "--format", "{{.Names}}"], ["rm", "-f", "-v", "-t", "1"]),
        (["network", "ls", "--format", "{{.Name}}"], ["network", "rm", "-f"]),
        (["volume", "ls", "--format", "{{.Name}}"], ["volume", "rm", "-f"]),
    )
    for listing, removal in kinds:
        names = [n for n in podman(*listing, check=False).split() if should_remove(n)]
        if names:
            podman(*removal, *names, check=False, timeout=180)
            removed += names
    return removed


def remove_leftovers() -> list[str]:
    """What earlier runs left behind: our prefix, and the run's pid no longer alive."""

    def dead(name: str) -> bool:
        pid = _owner_pid(name)
        return pid is not None and pid != os.getpid() and not _alive(pid)

    return remove_resources(dead)


# --- the engine, the images, the report --------------------------------------------------------


@dataclass
class Report:
    """Measurements, printed in pytest's terminal summary."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.write_sep("-", "container stage (tests/test_container_engine.py)")
            for line in self.lines:
                terminalreporter.write_line(line)


def unavailable(reason: str) -> NoReturn:
    if CI:
        pytest.fail(f"CI=true and no container engine: {reason}", pytrace=False)
    pytest.skip(
        f"no container engine could be installed ({reason}); "
        "the container stage needs podman from Debian (root or password-less sudo); "
        "with CI=true this is a failure"
    )


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Report:
    plugin = Report()
    request.config.pluginmanager.register(plugin, "speed-kings-container-report")
    return plugin


@pytest.fixture(scope="session")
def engine(report: Report) -> Iterator[None]:
    """podman from Debian, configured for this machine; leftovers of crashed runs removed."""
    started = time.monotonic()
    try:
        done = run(["bash", str(IMAGES_SCRIPT), "engine"], timeout=900, check=False)
    except subprocess.TimeoutExpired:
        unavailable("installing the engine took over 15 minutes")
    if done.returncode == 3:  # the script's "no engine can be had here"
        unavailable((done.stderr.strip().splitlines() or ["exit status 3"])[-1])
    assert done.returncode == 0, f"the engine is not usable:\n{done.stderr[-4000:]}"
    report.add(f"engine: {podman('--version').strip()} ({time.monotonic() - started:.0f} s)")
    left = remove_leftovers()
    if left:
        report.add(f"removed leftovers of earlier runs: {', '.join(left)}")
    try:
        yield
    finally:
        remove_resources(lambda name: name.startswith(RUN_ID))


@pytest.fixture(scope="session")
def stand_ins(engine: None, report: Report) -> None:
    """The base image and the stand-ins; each kept as a cache once built."""
    started = time.monotonic()
    done = run(["bash", str(IMAGES_SCRIPT), "images"], timeout=1800)
    steps = [line[3:] for line in done.stderr.splitlines() if line.startswith("== ")]
    report.add(f"base and stand-in images: {time.monotonic() - started:.0f} s")
    for step in steps:
        report.add(f"  {step}")


def image_size(image: str) -> int:
    size: int = inspect(image, "image")["Size"]
    return size


BUILDER_LABEL = "io.speed-kings.stage=builder"


@pytest.fixture(scope="session")
def project_images(stand_ins: None, report: Report) -> dict[str, str]:
    """The shipped Dockerfile, unchanged, on both bases; Docker format keeps HEALTHCHECK."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    built = {}
    for variant, (tag, base) in IMAGES.items():
        args = ["build", "--format", "docker", "--pull=never", "--layers"]
        args += ["--build-arg", f"VERSION={version}"]
        if base:
            args += ["--build-arg", f"PYTHON_IMAGE={base}"]
        started = time.monotonic()
        # The builder stage tagged and labelled first: the next build finds its layers, and
        # superseded builders can be told from anyone else's images (pruned below).
        builder = ["--target", "builder", "--label", BUILDER_LABEL, "-t", f"{tag}-builder"]
        podman(*args, *builder, str(ROOT), timeout=1800)
        podman(*args, "-t", tag, str(ROOT), timeout=1800)
        seconds = time.monotonic() - started
        built[variant] = tag
        base_name = base or "docker.io/library/python:3.11-slim"
        size, base_size = image_size(tag), image_size(base_name)
        report.add(
            f"image {tag} on {variant}: built in {seconds:.0f} s, {size / 1e6:.0f} MB "
            f"({(size - base_size) / 1e6:.0f} MB over its base {base_name})"
        )
    # Superseded builds of this project, untagged now; nobody else's images.
    for label in (BUILDER_LABEL, "org.opencontainers.image.title=speed-kings"):
        podman("image", "prune", "-f", "--filter", f"label={label}", check=False)
    return built


@pytest.fixture
def network(engine: None) -> Iterator[str]:
    """A network of this run, internal: containers on it reach each other, nothing else."""
    name = f"{RUN_ID}-net-{secrets.token_hex(2)}"
    podman("network", "create", "--internal", name)
    try:
        yield name
    finally:
        podman("network", "rm", "-f", name, check=False)


@contextlib.contextmanager
def container(name: str, *args: str) -> Iterator[str]:
    """`podman run -d --name NAME ARGS`, removed with its anonymous volumes afterwards."""
    try:
        podman("run", "-d", "--name", name, *args)
        yield name
    finally:
        podman("rm", "-f", "-v", "-t", "1", name, check=False)


# --- the stand-ins -----------------------------------------------------------------------------


def compose_images() -> dict[str, str]:
    services = yaml.safe_load(COMPOSE_FILE.read_text("utf-8"))["services"]
    return {name: svc["image"] for name, svc in services.items() if "build" not in svc}


def test_stand_ins_carry_the_compose_file_image_names(stand_ins: None) -> None:
    images = compose_images()
    expected = {
        "prometheus": "/usr/bin/prometheus",
        "alertmanager": "/usr/bin/prometheus-alertmanager",
        "victoriametrics": "/victoria-metrics-prod",
    }
    for service, entrypoint in expected.items():
        name = f"docker.io/{images[service]}"
        config = inspect(name, "image")["Config"]
        assert config["Entrypoint"] == [entrypoint], name
        # The compose healthchecks run wget, as the official images have.
        podman("run", "--rm", "--network", "none", "--entrypoint", "wget", name, "--version")
    assert "grafana" in images  # and there is no stand-in for it: never started here
    # Like the official python:3.11-slim: an interpreter that can make a venv.
    podman(
        "run", "--rm", "--network", "none", "docker.io/library/python:3.11-slim",
        "python3", "-c", "import ensurepip, venv",
    )  # fmt: skip


# --- the image ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", IMAGES)
def test_image_is_small_non_root_and_keeps_its_healthcheck(
    variant: str, project_images: dict[str, str]
) -> None:
    image = project_images[variant]
    doc = inspect(image, "image")
    config = doc["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["speed-kings"]
    assert config["Cmd"] == ["run", "--demo", "--listen", "0.0.0.0:9464"]
    assert STATE_DIR in config["Volumes"]
    # podman shows it beside Config; an OCI-format build would have dropped it.
    health = (doc.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test", [])
    assert health[0] == "CMD" and "http://127.0.0.1:9464/healthz" in health[-1]
    assert all(" " not in arg for arg in health), "podman's compat API splits on spaces"
    # The runtime layer holds no build tools, no installer and no apt lists; on the bare
    # Debian base the builder's python3-venv stays in the builder.
    packages = "build-essential python3-pip" + (" python3-venv" if variant == "debian-base" else "")
    probe = (
        "for t in gcc cc make pip pip3; do command -v $t; done; ls /opt/venv/bin | grep '^pip'; "
        "ls /var/lib/apt/lists | grep -v -x -e lock -e partial; ls /var/cache/apt/archives/*.deb; "
        f"dpkg-query -W -f='${{db:Status-Status}} ${{Package}}\\n' {packages} 2>/dev/null "
        "| sed -n 's/^installed //p'"
    )
    found = podman(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", probe + "; true"
    )  # fmt: skip
    assert found.split() == [], f"build tools in the runtime image: {found}"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    out = podman("run", "--rm", "--network", "none", image, "--version")
    assert out.strip() == f"speed-kings, version {version}"


@pytest.mark.parametrize("variant", IMAGES)
def test_container_is_healthy_non_root_serves_metrics_and_stops_on_sigterm(
    variant: str, project_images: dict[str, str], network: str, report: Report
) -> None:
    image = project_images[variant]
    name = f"{RUN_ID}-{variant}"
    with container(name, "--network", network, image):  # the image's own CMD: demo mode
        wait_healthy(name)
        assert inspect(name)["State"]["Health"]["Status"] == "healthy"
        status = podman("exec", name, "cat", "/proc/1/status")
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
        assert uids and uids.groups() == (str(UID), str(UID)), status
        assert podman("exec", name, "id", "-u").strip() == str(UID)

        # /metrics from another container, by name: the exporter listens on the network.
        def metrics() -> dict[Any, float]:
            text = podman(
                "run", "--rm", "--network", network, "--entrypoint", "/opt/venv/bin/python",
                image, "-c", FETCH, f"http://{name}:9464/metrics",
            )  # fmt: skip
            return parse_metrics(text)

        parsed = wait_for(
            lambda: (m := metrics()) and sample(m, "speedkings_probes_total") > 0 and m,
            timeout=90,
            what="demo probes in /metrics",
        )
        assert sample(parsed, "speedkings_build_info") == 1
        probed = {
            dict(labels)["provider"]
            for (n, labels), v in parsed.items()
            if n == "speedkings_probes_total" and v
        }
        assert probed and all(p.startswith("sim-") for p in probed), probed

        started = time.monotonic()
        podman("stop", "-t", "40", name, timeout=90)
        stopped_in = time.monotonic() - started
        state = inspect(name)["State"]
        # Exit status 0: it ended itself on SIGTERM; SIGKILL after the 40 s would give 137.
        assert (state["ExitCode"], state["OOMKilled"]) == (0, False), logs(name)
        assert '"event": "stopped"' in logs(name)
        report.add(f"{variant}: SIGTERM to exit in {stopped_in:.1f} s (grace period 40 s)")


MAX_TOKENS, OUTPUT_PRICE = 50, 1000.0  # $ per million output tokens


def spend(container_name: str) -> tuple[float, dict[Any, float]]:
    text = fetch(container_name, "http://127.0.0.1:9464/metrics", python=True)
    metrics = parse_metrics(text)
    month = sample(metrics, "speedkings_budget_spent_dollars", scope="global", period="month")
    return month, metrics


def outcomes(metrics: dict[Any, float], outcome: str) -> float:
    return sample(metrics, "speedkings_probes_total", provider="paid-sim", outcome=outcome)


def test_budget_ledger_on_the_volume_survives_a_new_container(
    project_images: dict[str, str], network: str, tmp_path: Path
) -> None:
    """Spend on the state volume carries into a new container and still caps its probes: the
    second container's cap is the first one's spend, so it may not probe at all; the same
    config on a fresh volume does."""
    image = project_images["python-slim"]
    worst = MAX_TOKENS * OUTPUT_PRICE / 1e6  # a probe's reservation
    sim = f"{RUN_ID}-sim"
    volume, fresh = f"{RUN_ID}-state", f"{RUN_ID}-state-fresh"

    def write_config(monthly_cap: float) -> Path:
        doc = {
            "listen": "0.0.0.0:9464",
            "state_dir": STATE_DIR,
            "timezone": "UTC",
            "log": {"format": "json"},
            "providers": {
                "paid-sim": {
                    "base_url": f"http://{sim}:8900/openai/v1",
                    "wire": "openai",
                    "hardware": "GPU",
                    "api_key_env": "SIM_KEY",
                    # Output only: a probe reserves max_tokens x price, 0.05 $ here.
                    "default_price": {
                        "input": 0.0,
                        "output": OUTPUT_PRICE,
                        "checked": "2026-11-22",
                        "source": "test",
                    },
                }
            },
            "comparisons": [
                {
                    "name": "paid",
                    "model": "llama-3.1-8b",
                    "providers": ["paid-sim"],
                    "schedule": {"interval": "1s"},
                    "max_tokens": MAX_TOKENS,
                }
            ],
            "budget": {"global": {"monthly": monthly_cap}},
        }
        path = tmp_path / f"config-{monthly_cap!r}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        path.chmod(0o644)
        return path

    def exporter(name: str, state: str, config: Path) -> contextlib.AbstractContextManager[str]:
        # As docker-compose.yml runs it: read-only root, /tmp in memory, no capabilities.
        return container(
            name,
            "--network", network,
            "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "-e", "SIM_KEY=sim-key",
            "-v", f"{state}:{STATE_DIR}",
            "-v", f"{config}:/etc/speed-kings/config.yaml:ro",
            image, "run", "--config", "/etc/speed-kings/config.yaml",
        )  # fmt: skip

    for name in (volume, fresh):
        podman("volume", "create", name)
    sim_args = ["--network", network, image, "simulate", "--host", "0.0.0.0", "--port", "8900"]
    with container(sim, *sim_args):
        # 1. Spend something, then stop cleanly.
        first = f"{RUN_ID}-ledger-1"
        with exporter(first, volume, write_config(1000.0)):
            wait_healthy(first)

            # Room for a probe's reservation under a cap of this spend, with a margin.
            def settled() -> float | None:
                spent, metrics = spend(first)
                return spent if spent >= 3 * worst and outcomes(metrics, "success") >= 2 else None

            spent = wait_for(settled, timeout=120, what=f"paid probes for ${3 * worst:.2f}")
            podman("stop", "-t", "40", first, timeout=90)
            assert inspect(first)["State"]["ExitCode"] == 0, logs(first)
        listing = podman(
            "run", "--rm", "--network", "none", "-v", f"{volume}:/state:ro",
            "--entrypoint", "ls", image, "-ln", "/state",
        )  # fmt: skip
        assert re.search(rf"^-\S+\s+\d+\s+{UID}\s+{UID}\s.*\.(db|sqlite\d?)$", listing, re.M), (
            f"no ledger owned by {UID} on the volume:\n{listing}"
        )

        # 2. A new container on the same volume, its monthly cap what the first one spent.
        capped = write_config(spent)
        second = f"{RUN_ID}-ledger-2"
        with exporter(second, volume, capped):
            wait_healthy(second)

            def skipped() -> tuple[float, dict[Any, float]] | None:
                after, metrics = spend(second)
                return (after, metrics) if outcomes(metrics, "skipped_budget") >= 1 else None

            after, metrics = wait_for(skipped, timeout=60, what="the capped probe skipped")
            assert after >= spent > 0, (after, spent)
            assert outcomes(metrics, "success") == 0

        # 3. The same config on a fresh volume probes: the cap bit because of the ledger.
        third = f"{RUN_ID}-ledger-3"
        with exporter(third, fresh, capped):
            wait_healthy(third)
            seen: list[Any] = []

            def succeeded() -> bool:
                now, metrics = spend(third)
                seen[:] = [now, {k: v for k, v in metrics.items() if "probes_total" in k[0]}]
                return outcomes(metrics, "success") >= 1

            try:
                wait_for(succeeded, timeout=60, what="a probe on the fresh volume")
            except AssertionError:
                raise AssertionError(f"cap {spent}: {seen}\n{logs(third)}") from None


# --- the compose stack ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def podman_service(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`podman system service`: the Docker API docker-compose talks to."""
    tmp = tmp_path_factory.mktemp("podman-service")
    sock = tmp / "podman.sock"
    log = (tmp / "service.log").open("wb")
    proc = subprocess.Popen(
        # Idle for 10 minutes, it ends itself: no orphan outlives a killed test run for long.
        ["podman", "system", "service", "--time=600", f"unix://{sock}"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ping() -> bool:
        assert proc.poll() is None, (tmp / "service.log").read_text(errors="replace")
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(sock))
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            return b"200 OK" in client.recv(4096)
        return False

    try:
        wait_for(ping, timeout=30, what="podman system service", every=0.2)
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Compose:
    project: str
    socket: Path
    override: Path
    tmp: Path
    profile: list[str] = field(default_factory=list)
    # Published ports on a loopback address of their own, so nothing listening on 127.0.0.1
    # clashes (internal networks do not forward them anyway).
    bind_address: str = field(
        default_factory=lambda: "127." + ".".join(str(random.randint(1, 254)) for _ in range(3))
    )

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        env_file = self.tmp / "empty.env"  # hermetic: never the developer's .env
        env_file.touch()
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.tmp),
            "DOCKER_HOST": f"unix://{self.socket}",
            "SPEED_KINGS_BIND_ADDRESS": self.bind_address,
        }
        cmd = ["docker-compose", "--env-file", str(env_file), "--project-directory", str(ROOT)]
        cmd += ["-p", self.project, "-f", str(COMPOSE_FILE), "-f", str(self.override)]
        return run([*cmd, *self.profile, *args], timeout=timeout, check=check, env=env).stdout

    def container(self, service: str) -> str:
        names = podman(
            "ps", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).split()  # fmt: skip
        assert len(names) == 1, f"{service}: running containers {names}"
        return names[0]


@contextlib.contextmanager
def compose_stack(
    name: str, services: tuple[str, ...], socket_path: Path, tmp: Path, profile: list[str]
) -> Iterator[Compose]:
    override: dict[str, Any] = {
        # Test networks: no route out of this machine.
        "networks": {net: {"internal": True} for net in ("default", "vantage-eu", "vantage-us")}
    }
    if "prometheus" in services:
        # The shipped rules plus one that fires at once, every 5 s (tests only).
        rules = tmp / "rules"
        rules.mkdir()
        for path in RULES_DIR.glob("*.yml"):
            shutil.copyfile(path, rules / path.name)
        test_rule = {
            "groups": [
                {
                    "name": "container-test",
                    "interval": "5s",
                    "rules": [
                        {
                            "alert": TEST_ALERT,
                            "expr": "vector(1)",
                            # Firing after Prometheus has found Alertmanager (its
                            # discovery settles after 5 s; a send before that is lost and
                            # repeated only a minute later).
                            "for": "10s",
                            "labels": {"severity": "warning"},
                            "annotations": {"summary": "forced by tests/test_container_engine.py"},
                        }
                    ],
                }
            ]
        }
        (rules / "zz-container-test.yml").write_text(yaml.safe_dump(test_rule), "utf-8")
        rules.chmod(0o755)
        for file in rules.iterdir():
            file.chmod(0o644)
        override["services"] = {
            "prometheus": {"volumes": [f"{rules}:/etc/prometheus/rules:ro"]},
        }
    override_file = tmp / "docker-compose.test.yml"
    override_file.write_text(yaml.safe_dump(override), "utf-8")
    tmp.chmod(0o755)  # the containers' users read the rules below it
    compose = Compose(f"{RUN_ID}-{name}", socket_path, override_file, tmp, profile)
    try:
        compose("up", "-d", "--no-build", *services)
        yield compose
    finally:
        compose("down", "-v", "-t", "1", "--remove-orphans", check=False)
        remove_resources(lambda n: n.startswith(compose.project))


def rule_names(path: Path) -> set[str]:
    doc = yaml.safe_load(path.read_text("utf-8"))
    return {r.get("alert") or r["record"] for g in doc["groups"] for r in g["rules"]}


@pytest.fixture(scope="class")
def stack(
    project_images: dict[str, str],
    podman_service: Path,
    tmp_path_factory: pytest.TempPathFactory,
    report: Report,
) -> Iterator[Compose]:
    tmp = tmp_path_factory.mktemp("stack")
    started = time.monotonic()
    with compose_stack("stack", DEFAULT_SERVICES, podman_service, tmp, []) as compose:
        seconds = time.monotonic() - started
        report.add(f"compose up exporter, prometheus, alertmanager: {seconds:.0f} s")
        yield compose


@pytest.fixture(scope="class")
def regions(
    project_images: dict[str, str],
    podman_service: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Compose]:
    tmp = tmp_path_factory.mktemp("regions")
    profile = ["--profile", "multi-region"]
    with compose_stack("regions", REGION_SERVICES, podman_service, tmp, profile) as compose:
        yield compose


class TestComposeStack:
    """exporter (demo), prometheus, alertmanager from docker-compose.yml."""

    def test_services_run_healthy_as_configured(self, stack: Compose) -> None:
        for service in DEFAULT_SERVICES:
            wait_healthy(stack.container(service))
        exporter = stack.container("exporter")
        assert inspect(exporter)["Config"]["User"] == f"{UID}:{UID}"
        assert inspect(exporter)["HostConfig"]["ReadonlyRootfs"] is True
        wrote = run(["podman", "exec", exporter, "touch", "/opt/venv/x"], check=False)
        assert wrote.returncode != 0, "the exporter's root file system is writable"
        started = {
            inspect(n)["Config"]["Labels"]["com.docker.compose.service"]
            for n in podman(
                "ps", "--format", "{{.Names}}",
                "--filter", f"label=com.docker.compose.project={stack.project}",
            ).split()
        }  # fmt: skip
        assert started == set(DEFAULT_SERVICES)

    def test_prometheus_scrapes_the_exporter_by_service_name(self, stack: Compose) -> None:
        prometheus = stack.container("prometheus")

        def exporter_target() -> dict[str, Any] | None:
            doc = fetch_json(prometheus, "http://127.0.0.1:9090/api/v1/targets")
            for target in doc["data"]["activeTargets"]:
                if target["labels"]["job"] == "speed-kings" and target["health"] == "up":
                    return dict(target)
            return None

        target = wait_for(exporter_target, timeout=120, what="speed-kings target up", every=2)
        assert target["scrapeUrl"] == "http://exporter:9464/metrics"
        query = "http://127.0.0.1:9090/api/v1/query?query=speedkings_build_info"
        result = fetch_json(prometheus, query)["data"]["result"]
        assert [r["metric"]["instance"] for r in result] == ["exporter:9464"]

    def test_prometheus_loads_the_shipped_rules(self, stack: Compose) -> None:
        prometheus = stack.container("prometheus")
        shipped = sorted(RULES_DIR.glob("*.yml"))
        assert shipped

        def groups() -> list[dict[str, Any]] | None:
            doc = fetch_json(prometheus, "http://127.0.0.1:9090/api/v1/rules")
            found: list[dict[str, Any]] = doc["data"]["groups"]
            evaluated = [g for g in found if g["name"] == "speedkings.alerts" and g["rules"]]
            return found if evaluated and evaluated[0]["rules"][0]["health"] != "unknown" else None

        loaded = wait_for(groups, timeout=120, what="the alert rules evaluated", every=2)
        for path in shipped:
            names = {
                r["name"] for g in loaded if g["file"].endswith("/" + path.name) for r in g["rules"]
            }
            assert names == rule_names(path), path.name
        broken = [
            (r["name"], r.get("lastError"))
            for g in loaded
            for r in g["rules"]
            if r["health"] == "err"
        ]
        assert not broken, broken
        alerts = {r["name"] for g in loaded for r in g["rules"] if r["type"] == "alerting"}
        assert {"SpeedKingsExporterDown", "SpeedKingsBudgetExhausted"} <= alerts

    def test_a_firing_alert_reaches_alertmanager(self, stack: Compose) -> None:
        prometheus, alertmanager = stack.container("prometheus"), stack.container("alertmanager")
        managers = fetch_json(prometheus, "http://127.0.0.1:9090/api/v1/alertmanagers")
        urls = [m["url"] for m in managers["data"]["activeAlertmanagers"]]
        assert urls == ["http://alertmanager:9093/api/v2/alerts"]

        def received() -> list[dict[str, Any]]:
            alerts = fetch_json(alertmanager, "http://127.0.0.1:9093/api/v2/alerts")
            return [a for a in alerts if a["labels"].get("alertname") == TEST_ALERT]

        (alert,) = wait_for(received, timeout=120, what=f"{TEST_ALERT} in Alertmanager", every=2)
        assert alert["status"]["state"] == "active"
        assert alert["labels"]["severity"] == "warning"
        # Routed by the shipped config: warnings go to the `chat` receiver.
        assert [r["name"] for r in alert["receivers"]] == ["chat"]
        status = fetch_json(alertmanager, "http://127.0.0.1:9093/api/v2/status")
        assert "SpeedKingsBudgetExhausted" in status["config"]["original"]


class TestMultiRegionProfile:
    """Two exporters with their own region label, their agents, one VictoriaMetrics."""

    def test_victoriametrics_holds_both_regions(self, regions: Compose, report: Report) -> None:
        started = time.monotonic()
        for service in REGION_SERVICES:
            wait_healthy(regions.container(service))
        store = regions.container("victoriametrics")
        query = "http://127.0.0.1:8428/api/v1/query?query=" + urllib.parse.quote(
            "count by (region, job) (speedkings_build_info)"
        )

        def series() -> list[dict[str, Any]] | None:
            result: list[dict[str, Any]] = fetch_json(store, query)["data"]["result"]
            return result if {r["metric"].get("region") for r in result} == {"eu", "us"} else None

        result = wait_for(series, timeout=180, what="both regions in VictoriaMetrics", every=3)
        seconds = time.monotonic() - started
        report.add(f"multi-region: both regions in VictoriaMetrics {seconds:.0f} s after up")
        assert sorted((r["metric"]["region"], r["metric"]["job"]) for r in result) == [
            ("eu", "speed-kings"),
            ("us", "speed-kings"),
        ]
