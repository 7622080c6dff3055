"""The one fetcher of caller-supplied URLs (``indexer.safe_fetch``): which addresses it refuses,
in every spelling, before connecting, and that every failure reads the same. No server here:
numeric hosts resolve without DNS, and a refused address is never connected to."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import urllib3

from indexer.errors import InvalidImageError
from indexer.safe_fetch import NOT_FETCHED, UrlNotFetched, fetch_url, refusal_reason, resolve_checked

# Every spelling of an address the server itself can reach; each resolves to a refused address.
HOSTILE_HOSTS = [
    "127.0.0.1",
    "127.1",  # short dotted form
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f000001",  # ... in hex
    "017700000001",  # ... in octal
    "localhost",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.20",
    "169.254.169.254",  # the cloud metadata endpoint
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[::1]",
    "[::]",
    "[fe80::1]",
    "[fd00::1]",
    "[ff02::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:169.254.169.254]",
    "[64:ff9b::7f00:1]",  # NAT64 of 127.0.0.1
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[64:ff9b:1::a00:1]",  # local-use NAT64
    "[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
    "[2002:c0a8:114::1]",  # 6to4 of 192.168.1.20
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_every_spelling_of_an_inner_address_is_refused_before_connecting(host, monkeypatch):
    def no_connection(*args, **kwargs):
        raise AssertionError("a refused address was connected to")

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "_new_conn", no_connection)
    with pytest.raises(UrlNotFetched) as refused:
        fetch_url(f"http://{host}:8080/cat.jpg")
    assert str(refused.value) == NOT_FETCHED  # the caller learns nothing about the address
    assert "address" in refused.value.reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_pass_in_any_form(address):
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_the_reason_names_what_the_address_is():
    assert refusal_reason(ipaddress.ip_address("127.0.0.1")) == "127.0.0.1 is a loopback address"
    assert refusal_reason(ipaddress.ip_address("169.254.169.254")) == "169.254.169.254 is a link-local address"
    assert refusal_reason(ipaddress.ip_address("64:ff9b::7f00:1")) == (
        "64:ff9b::7f00:1 embeds 127.0.0.1 is a loopback address"
    )


def test_a_host_is_resolved_once_to_the_address_that_is_connected_to(monkeypatch):
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))]])
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: next(answers))
    assert resolve_checked("example.com", 80) == "93.184.216.34"  # a second lookup would fail


def test_one_private_address_among_public_ones_refuses_the_host(monkeypatch):
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 80)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: infos)
    with pytest.raises(UrlNotFetched, match=f"^{NOT_FETCHED}$") as refused:
        resolve_checked("rebinding.example", 80)
    assert "10.1.2.3 is a private address" in refused.value.reason
    assert resolve_checked("rebinding.example", 80, allow_private=True) == "93.184.216.34"


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://8.8.8.8/cat.jpg", "gopher://8.8.8.8/", "http:///cat.jpg", "//8.8.8.8/a", "cat.jpg"],
)
def test_only_absolute_http_urls_are_fetched(url):
    with pytest.raises(InvalidImageError, match="^the image URL must be an absolute http or https URL$"):
        fetch_url(url)


def test_a_closed_port_and_an_unresolvable_host_read_as_a_refused_address():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    failures = []
    for url, allow_private in (
        (f"http://127.0.0.1:{closed}/a.jpg", True),  # connection refused
        (f"http://127.0.0.1:{closed}/a.jpg", False),  # refused address
        ("http://no-such-host.invalid/a.jpg", False),  # does not resolve
    ):
        with pytest.raises(UrlNotFetched) as caught:
            fetch_url(url, allow_private=allow_private)
        failures.append(caught.value)
    assert {str(failure) for failure in failures} == {NOT_FETCHED}
    assert len({failure.reason for failure in failures}) == 3  # the log still tells them apart
