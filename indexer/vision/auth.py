"""Request headers for the two ways Azure AI Vision authenticates a caller.

- A resource key (``AzureKeyCredential``) goes in ``Ocp-Apim-Subscription-Key``. The key is
  read on every request, so ``AzureKeyCredential.update`` (key rotation) takes effect at once.
- A Microsoft Entra ID token from any azure-identity ``TokenCredential`` (managed identity in
  Azure, ``az login`` on a laptop) goes in ``Authorization: Bearer``. Fetching a token costs a
  round trip to Entra ID, so it is cached and refreshed shortly before it expires.

Secrets never leave this module except in the headers themselves: no log record, ``repr``
or exception message carries them.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from azure.core.credentials import AzureKeyCredential

from indexer.vision.contract import AUTHORIZATION_HEADER, COGNITIVE_SERVICES_SCOPE, SUBSCRIPTION_KEY_HEADER

# Refresh this long before expiry, so a token never expires while a request is in flight
# (azure-core's own bearer-token policy uses the same margin).
REFRESH_MARGIN_SECONDS = 300


class AuthHeaders(Protocol):
    def headers(self) -> dict[str, str]: ...


class KeyAuth:
    def __init__(self, credential: AzureKeyCredential) -> None:
        self._credential = credential

    def headers(self) -> dict[str, str]:
        return {SUBSCRIPTION_KEY_HEADER: self._credential.key}

    def __repr__(self) -> str:
        return "KeyAuth(<key hidden>)"


class TokenAuth:
    """Bearer tokens from a ``TokenCredential``, cached until ``REFRESH_MARGIN_SECONDS`` before
    expiry. Thread-safe: concurrent workers share one token and one refresh."""

    def __init__(self, credential: Any, *, scope: str = COGNITIVE_SERVICES_SCOPE) -> None:
        self._credential = credential
        self._scope = scope
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0

    def _valid(self) -> bool:
        return self._token is not None and time.time() < self._expires_on - REFRESH_MARGIN_SECONDS

    def headers(self) -> dict[str, str]:
        if not self._valid():
            with self._lock:
                if not self._valid():
                    access = self._credential.get_token(self._scope)
                    self._token = access.token
                    self._expires_on = float(access.expires_on)
        return {AUTHORIZATION_HEADER: f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return f"TokenAuth(scope={self._scope!r})"


def auth_for(credential: Any) -> AuthHeaders:
    """Pick the scheme for ``credential``; anything else is a configuration error."""
    if isinstance(credential, AzureKeyCredential):
        return KeyAuth(credential)
    if callable(getattr(credential, "get_token", None)):
        return TokenAuth(credential)
    raise TypeError(
        "credential must be an azure.core.credentials.AzureKeyCredential (a Vision resource key) or an "
        "azure-identity TokenCredential such as DefaultAzureCredential; got "
        f"{type(credential).__name__}")
