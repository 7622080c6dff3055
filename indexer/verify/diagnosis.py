"""Which service a failed ``imgsearch verify`` stage is blamed on (``indexer.verify``).

The error a service gave names it; a stage that fails or times out without that is blamed on
the first service it depends on that does not answer this machine at all, so an outage behind
the Function (Vision down, say) is named as such. Each service is named as a person knows it:
what it is and the setting that points at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from azure.core.exceptions import AzureError

from indexer.errors import EXIT_FAILED, ConfigurationError, ImageSearchError, classify, describe
from indexer.redact import redact_urls
from indexer.settings import Settings

# How long a service may take to give any answer at all.
PROBE_TIMEOUT = 5.0


@dataclass
class Failure:
    """Why a stage failed: the stage, the service to blame, one line about it, the exit code."""

    stage: str
    service: str
    message: str
    exit_code: int

    def __str__(self) -> str:
        return f"stage '{self.stage}': {self.service} {self.message}"


class StageFailed(ImageSearchError):
    """A stage saw the wrong outcome or none in time; ``service`` names who gave it (or None to
    let the diagnosis find who), ``cause`` the error behind it, if any."""

    def __init__(
        self, message: str, *, service: str | None = None, cause: BaseException | None = None, behind: bool = False
    ) -> None:
        super().__init__(message)
        self.service = service
        self.cause = cause
        # The service failed behind another one (Vision behind the Function): whether it answers
        # this machine at all is worth saying too.
        self.behind = behind


def function_url(settings: Settings) -> str:
    """The Function app's base URL: ``IMGSEARCH_FUNCTION_URL``, else the app of
    ``SEARCH_VECTORIZER_URI`` (its ``/api/vectorize``)."""
    url = settings.function_url.strip().rstrip("/")
    if not url:
        vectorizer = settings.search_vectorizer_uri.strip().rstrip("/")
        if vectorizer.lower().endswith("/api/vectorize"):
            url = vectorizer[: -len("/api/vectorize")]
    if not url:
        raise ConfigurationError(
            "no Function app to verify: set IMGSEARCH_FUNCTION_URL to its URL (e.g. "
            "https://<app>.azurewebsites.net, or http://127.0.0.1:7071 for `imgsearch serve`)"
        )
    if not url.lower().startswith(("https://", "http://")):
        raise ConfigurationError(f"IMGSEARCH_FUNCTION_URL must be an http(s) URL, got {url!r}")
    return url


@dataclass(frozen=True)
class Service:
    """A service a stage depends on: its name as a person knows it, and a URL to ask whether
    it answers at all (None: nothing to ask, e.g. the offline model in-process)."""

    label: str
    url: str | None


def services_for(settings: Settings, storage_url: str) -> dict[str, Service]:
    vision = settings.vision_endpoints if not settings.uses_offline_model else []
    function = function_url(settings)
    vectorizer = settings.search_vectorizer_uri or f"{function}/api/vectorize"
    return {
        "storage": Service(f"Blob Storage ({storage_url})", storage_url),
        "function": Service(f"the Function (IMGSEARCH_FUNCTION_URL {function})", function),
        "vision": Service(f"Vision (VISION_ENDPOINT {', '.join(vision)})", vision[0] if vision else None),
        "search": Service(f"Azure AI Search (SEARCH_ENDPOINT {settings.search_endpoint})", settings.search_endpoint),
        "vectorizer": Service(f"the index's vectorizer (SEARCH_VECTORIZER_URI {vectorizer})", vectorizer),
    }


# What each stage depends on, the one it talks to first.
STAGE_SERVICES = {
    "upload": ("storage",),
    "indexer": ("search", "vectorizer", "vision", "storage"),
    "searchable": ("function", "vision", "search"),
    "vectorizer": ("search", "vectorizer", "vision"),
    "delete": ("storage", "search"),
    "gone": ("search", "function", "storage"),
}


def unreachable(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """How ``url`` fails to answer ("refused the connection", ...), or None when it gives any
    HTTP answer at all (a 401 or a 404 still means it is up)."""
    try:
        requests.get(url, timeout=timeout, allow_redirects=False).close()
        return None
    except requests.exceptions.ConnectionError as exc:
        text = str(exc).lower()
        if "refused" in text:
            return "refused the connection"
        if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return f"has a host name that does not resolve ({urlsplit(url).hostname})"
        return "could not be reached"
    except requests.exceptions.Timeout:
        return f"did not answer within {timeout:g} s"
    except requests.exceptions.RequestException as exc:
        return f"could not be asked ({type(exc).__name__})"


def diagnose(stage: str, services: dict[str, Service], error: BaseException) -> Failure:
    """The service to blame for ``error`` in ``stage`` and what to say about it."""
    seen = redact_urls(what_was_seen(error))
    named = getattr(error, "service", None)
    cause = getattr(error, "cause", None) or error
    exit_code = classify(cause).exit_code if classify(cause).kind != "bug" else EXIT_FAILED
    if named is not None and not getattr(error, "behind", False) and not _no_answer(cause):
        return Failure(stage, services[named].label, seen, exit_code)
    for key in [named] if named is not None else STAGE_SERVICES[stage]:
        service = services[key]
        down = unreachable(service.url) if service.url is not None else None
        if down is not None:
            return Failure(stage, service.label, f"{down} ({seen})", exit_code)
    return Failure(stage, services[named or STAGE_SERVICES[stage][0]].label, seen, exit_code)


def _no_answer(error: BaseException) -> bool:
    """Whether ``error`` is a call that got no answer at all (refused, timed out, no such host)."""
    return isinstance(error, (AzureError, OSError, requests.RequestException)) and (
        getattr(error, "status_code", None) is None
    )


def what_was_seen(error: BaseException) -> str:
    if isinstance(error, StageFailed):
        return str(error)
    status = getattr(error, "status_code", None)
    return (f"answered HTTP {status}: " if status else "failed: ") + describe(error)
