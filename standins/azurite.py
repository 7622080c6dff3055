"""Start and stop Azurite, Microsoft's Blob Storage emulator, for tests and local runs.

Azurite is installed by npm (``package.json`` at the repository root; ``make`` runs
``npm install``). Each run gets its own data folder and a free port on 127.0.0.1, so parallel
test sessions never share state, and it is stopped by the process id we started, never by name.

The account is Azurite's documented development account (``devstoreaccount1`` and its
well-known key). That key is public and only ever valid against the emulator.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import ConfigurationError

ACCOUNT_NAME = "devstoreaccount1"
# Azurite's published development key (documented by Microsoft); not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REPO_ROOT = Path(__file__).resolve().parents[1]


def connection_string(blob_endpoint: str, queue_endpoint: str | None = None) -> str:
    """A connection string for the development account at ``blob_endpoint`` (and the queue
    service at ``queue_endpoint``, when one runs)."""
    queue = f"QueueEndpoint={queue_endpoint.rstrip('/')};" if queue_endpoint else ""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={blob_endpoint.rstrip('/')};{queue}"
    )


def find_azurite_blob(explicit: str | os.PathLike[str] | None = None, *, service: str = "blob") -> Path:
    """Where the ``azurite-blob`` (or ``azurite-queue``) launcher is: ``explicit``,
    ``$AZURITE_BLOB`` (``$AZURITE_QUEUE``), the repository's ``node_modules/.bin``, or the PATH,
    in that order."""
    candidates = [
        explicit,
        os.environ.get(f"AZURITE_{service.upper()}"),
        REPO_ROOT / "node_modules" / ".bin" / f"azurite-{service}",
        shutil.which(f"azurite-{service}"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ConfigurationError(
        f"Azurite is not installed: expected node_modules/.bin/azurite-{service} under the repository root; "
        f"run `npm install` (or `make`), or set AZURITE_{service.upper()} to the launcher's path"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class AzuriteBlob:
    """A running Azurite blob (or queue: ``service``) service. Use as a context manager, or call
    ``stop()``."""

    process: subprocess.Popen
    host: str
    port: int
    data_dir: Path
    log_path: Path
    _owns_data_dir: bool = field(default=False, repr=False)
    service: str = "blob"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def endpoint(self) -> str:
        """The service's endpoint (``blob_endpoint`` is the same URL, named for the blob service)."""
        return self.blob_endpoint

    @property
    def connection_string(self) -> str:
        if self.service == "queue":
            raise ValueError("a queue service alone has no blob endpoint: use connection_string(blob, queue)")
        return connection_string(self.blob_endpoint)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the process we started (by its pid), then remove a data folder we created."""
        if self.process.poll() is None:
            # The launcher may be a shim that starts node: signal the whole session we started
            # (its id is our child's pid), so no node process outlives us.
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        else:
            _signal_group(self.process, signal.SIGTERM)  # a child left behind by the launcher
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> AzuriteBlob:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_azurite_blob(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    launcher: str | os.PathLike[str] | None = None,
    startup_timeout: float = 30.0,
    in_memory: bool = False,
    service: str = "blob",
) -> AzuriteBlob:
    """Start the blob service only (or, with ``service="queue"``, the queue service only) and
    wait until it answers HTTP.

    ``port=0`` picks a free port. ``data_dir=None`` uses a new temporary folder that ``stop()``
    removes. ``--skipApiVersionCheck`` lets a newer azure-storage-blob talk to this Azurite;
    ``--loose`` ignores headers Azurite does not implement instead of failing the request.
    """
    if service not in ("blob", "queue"):
        raise ValueError(f"Azurite service must be 'blob' or 'queue', got {service!r}")
    exe = find_azurite_blob(launcher, service=service)
    owns = data_dir is None
    workdir = Path(tempfile.mkdtemp(prefix="azurite-")) if data_dir is None else Path(data_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    attempts = 3 if port == 0 else 1
    last_error = ""
    for _ in range(attempts):
        chosen = port or free_port(host)
        log_path = workdir / f"azurite-{chosen}.log"
        args = [
            str(exe),
            f"--{service}Host",
            host,
            f"--{service}Port",
            str(chosen),
            "--location",
            str(workdir),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ]
        if in_memory:
            args.append("--inMemoryPersistence")
        with open(log_path, "wb") as log:
            # A session of its own: Ctrl-C in a terminal reaches our process, which then stops
            # Azurite by pid in order, instead of both racing to exit.
            process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                start_new_session=True,
            )
        server = AzuriteBlob(process, host, chosen, workdir, log_path, _owns_data_dir=owns, service=service)
        if _wait_until_answers(server, startup_timeout):
            return server
        last_error = log_path.read_text(errors="replace")[-2000:]
        server._owns_data_dir = False
        server.stop()
    if owns:
        shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(f"Azurite ({service}) did not start on {host}; its last output:\n{last_error}")


def start_azurite_queue(**options) -> AzuriteBlob:
    """Start Azurite's queue service only (``start_azurite_blob`` with ``service="queue"``); pair
    it with a blob service through ``connection_string(blob.blob_endpoint, queue.endpoint)``."""
    return start_azurite_blob(service="queue", **options)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the process group of ``process`` (started with ``start_new_session``)."""
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_until_answers(server: AzuriteBlob, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    url = f"http://{server.host}:{server.port}/{ACCOUNT_NAME}?comp=list"
    while time.monotonic() < deadline:
        if not server.is_running():
            return False
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (an unsigned request gets 403) means it is serving
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.1)
    return False
