"""``imgsearch dev``: the whole Azure path on this machine, in one foreground command.

It starts Azurite, the Vision stand-in, the search double and ``serve``, plus the ``watch``
runner in push mode or the double's indexer in pull mode (with Azurite's delete retention on,
as ``infra/`` turns on soft delete), each a process with its own log; waits until each
answers; writes the settings a second terminal needs to ``dev.env``; and on Ctrl-C, or when
one process dies, stops every process it started, by the ids it started them with. The
settings are production's (README, "Offline end to end: imgsearch dev").
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import ConfigurationError
from standins.azurite import AzuriteBlob, start_azurite_blob
from standins.dev_lock import DataDirLock


@dataclass
class DevPorts:
    blob: int = 10000
    vision: int = 5000
    search: int = 8090
    api: int = 7071


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    url: str

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process group we started (its id is the child's pid)."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class DevEnvironment:
    data_dir: Path
    ports: DevPorts
    settings: dict[str, str]
    azurite: AzuriteBlob | None = None
    children: list[Child] = field(default_factory=list)
    lock: DataDirLock | None = None

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.azurite is not None:
            self.azurite.stop()
        if self.lock is not None:
            self.lock.release()  # last: the folder is free only once nothing uses it

    def env_file(self) -> Path:
        return self.data_dir / "dev.env"


def _imgsearch(*args: str) -> list[str]:
    return [sys.executable, "-m", "indexer", *args]


def _check_free(ports: DevPorts) -> None:
    import socket

    for name, port in vars(ports).items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise ConfigurationError(
                    f"port {port} ({name}) is in use on 127.0.0.1; is another `imgsearch dev` running? "
                    f"choose another with --{name}-port"
                ) from None


def _wait_for(url: str, child: Child, timeout: float) -> None:
    """Until ``url`` gives any HTTP answer; a child that exits or stays silent is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise ConfigurationError(f"{child.name} exited at start; see its log {child.log_path}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # an answer (401, 404...) means it serves
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise ConfigurationError(f"{child.name} did not answer at {url} within {timeout:g} s; see {child.log_path}")


def start(
    data_dir: Path,
    ports: DevPorts,
    *,
    model_version: str,
    say: Callable[[str], None],
    startup_timeout: float = 120.0,
    pull: bool = False,
) -> DevEnvironment:
    """Start everything (see the module doc) and return it running; stops what it started
    if any part fails."""
    from azure.storage.blob import BlobServiceClient, RetentionPolicy

    data_dir = data_dir.resolve()
    lock = DataDirLock(data_dir)
    described = ", ".join(f"{name} port {port}" for name, port in vars(ports).items())
    lock.acquire(described)  # before the ports: a second dev on this folder is named as such
    env = DevEnvironment(data_dir, ports, settings={}, lock=lock)
    try:
        _check_free(ports)
        logs = data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        vision_key, search_key = secrets.token_hex(16), secrets.token_hex(16)
        env.azurite = start_azurite_blob(data_dir=data_dir / "azurite", port=ports.blob)
        say(f"azurite       ready   {env.azurite.blob_endpoint}   log {env.azurite.log_path}")
        settings = {
            "IMAGES_STORAGE": env.azurite.connection_string,
            "IMAGES_CONTAINER": "images",
            "VISION_ENDPOINT": f"http://127.0.0.1:{ports.vision}",
            "VISION_KEY": vision_key,
            "VISION_MODEL_VERSION": model_version,
            "SEARCH_ENDPOINT": f"http://127.0.0.1:{ports.search}",
            "SEARCH_KEY": search_key,
            "SEARCH_INDEX_NAME": "images",
            # The index's Web API vectorizer (and pull mode's skill) call serve's endpoint.
            "SEARCH_VECTORIZER_URI": f"http://127.0.0.1:{ports.api}/api/vectorize",
            # The Function's HTTP endpoints (`imgsearch verify` queries its /api/search); serve
            # needs no key on loopback.
            "IMGSEARCH_FUNCTION_URL": f"http://127.0.0.1:{ports.api}",
            "INGESTION_MODE": "pull" if pull else "push",
            "IMGSEARCH_DATA_DIR": str(data_dir),
            # Its own Azurite blobs are on loopback: image URLs there may be searched by.
            "IMGSEARCH_ALLOW_PRIVATE_URLS": "true",
        }
        env.settings = settings
        service = BlobServiceClient.from_connection_string(settings["IMAGES_STORAGE"])
        for container in ("images", "imgsearch-failures"):
            if not service.get_container_client(container).exists():
                service.create_container(container)
        child_env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
        # The stand-ins take their keys from the environment, never from a command line that
        # `ps` would show.
        vision = _imgsearch("serve-vision", "--port", str(ports.vision), "--log-level", "warning")
        # Writes show after a second, as Azure shows them "a few seconds after" (FIDELITY X13), so
        # the local path meets the same read-after-write delay as production.
        search = _imgsearch(
            "serve-search-double",
            "--port",
            str(ports.search),
            "--persist-dir",
            str(data_dir / "search"),
            "--visibility-delay",
            "1",
        )
        plan = [
            ("vision", vision, {"VISION_SERVER_KEYS": vision_key}, f"http://127.0.0.1:{ports.vision}/"),
            ("search", search, {"SEARCH_DOUBLE_KEYS": search_key}, f"http://127.0.0.1:{ports.search}/"),
        ]
        for name, command, keys, url in plan:
            child = _spawn(name, command, {**child_env, **keys}, logs, url)
            env.children.append(child)
            _wait_for(url, child, startup_timeout)
            say(f"{name:<13} ready   {url}   log {child.log_path}")
        api = f"http://127.0.0.1:{ports.api}/"  # the search page: a URL that works in a browser
        if not pull:
            # The index first (asking the stand-in which model version it answers with), then the
            # processes that use it.
            _run_step("ensure-index", child_env, say, "index")
            processes = [
                ("watch", _imgsearch("watch", "--interval", "1"), ""),
                ("serve", _imgsearch("serve", "--port", str(ports.api)), api),
            ]
        else:
            # What infra/ does in pull mode: blob soft delete on, so the indexer sees deletions.
            service.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=True, days=7))
            processes = [("serve", _imgsearch("serve", "--port", str(ports.api)), api)]
        for name, command, url in processes:
            child = _spawn(name, command, child_env, logs, url)
            env.children.append(child)
            if url:
                _wait_for(url, child, startup_timeout)
            say(f"{name:<13} running {url or '(polls the images container every second)'}   log {child.log_path}")
        if pull:
            # The skill calls serve's /api/vectorize, which must answer before the first run.
            _run_step("ensure-indexer", child_env, say, "indexer")
        _write_env_file(env)
        return env
    except BaseException:
        env.stop()
        raise


def _run_step(command: str, env: dict[str, str], say: Callable[[str], None], label: str) -> None:
    done = subprocess.run(_imgsearch(command), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigurationError(f"{command} failed: {done.stderr.strip()}")
    say(f"{label:<13} ready   {done.stdout.strip()}")


def _spawn(name: str, command: list[str], env: dict[str, str], logs: Path, url: str) -> Child:
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_hears_interrupts,
        )
    return Child(name, process, log_path, url)


def _hears_interrupts() -> None:
    """In the child: SIGINT at its default, since ``Child.stop`` asks with SIGINT first. A shell
    starts background jobs (``imgsearch dev &``) with SIGINT ignored, which children inherit;
    each would then take the full timeout before the SIGTERM that follows."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _write_env_file(env: DevEnvironment) -> None:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.settings.items()]
    path = env.env_file()
    path.write_text("# written by `imgsearch dev`; `source` it in another terminal\n" + "\n".join(lines) + "\n")
    path.chmod(0o600)  # it holds the stand-ins' keys


@contextmanager
def stopped_by_kill_and_hangup() -> Iterator[None]:
    """Treat SIGTERM (``kill``) and SIGHUP (a closed terminal) as Ctrl-C while inside.

    The children run in sessions of their own (so a Ctrl-C reaches dev first, and dev stops
    them in order); without this, ``kill <dev>`` would end dev at once and leave them running.
    Only the main thread can set signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, interrupt) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def supervise(env: DevEnvironment, say: Callable[[str], None], poll: float = 1.0) -> int:
    """Wait until Ctrl-C or until a child exits; then stop everything. Returns the exit code."""
    code = 0
    try:
        while True:
            dead = [c for c in env.children if not c.running()]
            if env.azurite is not None and not env.azurite.is_running():
                say(f"azurite exited; see {env.azurite.log_path}")
                code = 1
                break
            if dead:
                for child in dead:
                    say(f"{child.name} exited with {child.process.returncode}; see {child.log_path}")
                code = 1
                break
            time.sleep(poll)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        env.stop()
    say("stopped every process `imgsearch dev` started")
    return code
