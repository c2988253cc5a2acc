"""Egress: non-public destinations refused before any connection, operator allowances, the pinned address.

No test here sends a packet anywhere but loopback: names resolve through a test resolver, refusals happen
before a connection (a recording backend fails the test if one is attempted), and the only servers are
on 127.0.0.x. A "public" address below (93.184.215.14, 2606:4700::1) is only ever handed to a fake backend.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import httpcore
import httpx
import pytest
import pytest_asyncio

from llmops_shared.egress import (
    NOT_ALLOWED,
    DestinationNotAllowed,
    EgressPolicy,
    PinnedBackend,
    is_public,
    parse_allow,
    pin,
)
from llmops_shared.settings import CommonSettings

PUBLIC_V4, PUBLIC_V6 = "93.184.215.14", "2606:4700::1"


def resolver(answers: dict[str, Sequence[str]], calls: list[str] | None = None) -> Any:
    """Fixed answers per name; a name not listed does not resolve (as NXDOMAIN)."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise OSError(-2, "Name or service not known")
        return answers[host]

    return resolve


FLAVOURS: list[Any] = [httpx]
try:  # openai>=3 speaks httpx2, a fork with httpx's API: the judge's client is of that flavour
    import httpcore2
    import httpx2

    FLAVOURS.append(httpx2)
except ImportError:  # pragma: no cover
    pass


class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """The real backend, for 127.0.0.0/8 only: any other connection attempt fails the test before it is made."""

    def __init__(self, flavour: Any = httpx) -> None:
        self.inner = (httpcore2 if flavour is not httpx else httpcore).AnyIOBackend()
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,  # noqa: ASYNC109
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        assert ipaddress.ip_address(host).is_loopback, f"a connection to {host} was attempted"
        self.connected.append((host, port))
        return await self.inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                            socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def client(policy: EgressPolicy, backend: Any, flavour: Any = httpx) -> Any:
    transport = pin(flavour.AsyncHTTPTransport(trust_env=False), policy, inner=backend)
    return flavour.AsyncClient(transport=transport, trust_env=False, follow_redirects=False, timeout=5)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.2 only (not 127.0.0.1), answering with the Host header it was sent; a
    request to /redirect is sent to the metadata service's address."""
    hosts: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            lines = head.decode().split("\r\n")
            host = next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("host:"))
            hosts.append(host)
            if lines[0].split()[1] == "/redirect":
                writer.write(b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\n"
                             b"content-length: 0\r\n\r\n")
            else:
                body = host.encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.2", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port, hosts
    finally:
        srv.close()
        await srv.wait_closed()


# -- what is public -------------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254",
    "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fd00::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
    "::ffff:10.0.0.1", "2002:a9fe:a9fe::1", "64:ff9b::a9fe:a9fe", "2001:db8::1", "2001::1",
])
def test_addresses_that_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC_V4, "8.8.8.8", PUBLIC_V6, "::ffff:8.8.8.8", "2002:808:808::1"])
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_allowances_parse_and_bad_ones_are_named() -> None:
    entries = parse_allow("127.0.0.1:8099, judge.internal:443 10.1.0.0/16:443,[fd00::7]:8000,Judge.Example.:80")
    assert [(e.name, str(e.network) if e.network else None, e.port) for e in entries] == [
        (None, "127.0.0.1/32", 8099), ("judge.internal", None, 443), (None, "10.1.0.0/16", 443),
        (None, "fd00::7/128", 8000), ("judge.example", None, 80)]
    for bad in ("127.0.0.1", "judge.internal:http", "fd00::7:80", "a:0", "a b:80", "x:99999"):
        with pytest.raises(ValueError, match="egress allowance"):
            parse_allow(bad)
    with pytest.raises(ValueError, match="egress allowance"):
        CommonSettings(egress_allow="127.0.0.1")


# -- refused before any connection ----------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5432/v1", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/v1",
    "http://[::1]:6379/", "http://[::ffff:169.254.169.254]/", "http://0.0.0.0:8082/", "https://192.168.1.1/v1",
    "http://localhost:8082/", "http://internal.example/", "http://mixed.example/", "http://nowhere.example/",
])
async def test_non_public_destinations_are_refused_at_check_and_at_connect(url: str) -> None:
    answers = {"localhost": ["127.0.0.1"], "internal.example": ["10.20.30.40"],
               "mixed.example": [PUBLIC_V4, "169.254.169.254"]}  # one public, one not: refused
    policy = EgressPolicy(resolver=resolver(answers))
    with pytest.raises(DestinationNotAllowed) as checked:
        await policy.check_url(url)
    assert str(checked.value) == NOT_ALLOWED
    backend = LoopbackOnly()
    async with client(policy, backend) as http:
        with pytest.raises(DestinationNotAllowed) as connecting:
            await http.get(url)
    assert str(connecting.value) == NOT_ALLOWED and backend.connected == []


@pytest.mark.parametrize("url", ["ftp://files.example/", "http:///v1", "file:///etc/passwd", "not a url"])
async def test_only_http_urls_with_a_host_pass_the_check(url: str) -> None:
    with pytest.raises(DestinationNotAllowed, match=NOT_ALLOWED):
        await EgressPolicy(resolver=resolver({})).check_url(url)


async def test_public_names_pass_the_check() -> None:
    policy = EgressPolicy(resolver=resolver({"judge.example": [PUBLIC_V4, PUBLIC_V6]}))
    assert [str(a) for a in await policy.check_url("https://judge.example/v1")] == [PUBLIC_V4, PUBLIC_V6]
    assert [str(a) for a in await policy.check_url(f"http://{PUBLIC_V4}:8443/v1")] == [PUBLIC_V4]


async def test_an_allowance_is_exactly_one_host_and_port() -> None:
    policy = EgressPolicy("127.0.0.1:8099,judge.internal:443,10.1.0.0/16:443",
                          resolver=resolver({"judge.internal": ["10.9.9.9"], "other.internal": ["10.9.9.9"],
                                             "rebound.example": ["127.0.0.1"], "net.internal": ["10.1.2.3"]}))
    assert await policy.check_url("http://127.0.0.1:8099/v1")
    assert await policy.check_url("http://rebound.example:8099/v1")  # an allowed address, whatever the name
    assert await policy.check_url("https://judge.internal/v1")
    assert await policy.check_url("https://net.internal/v1")
    for url in ("http://127.0.0.1:8098/v1", "http://127.0.0.2:8099/v1", "http://judge.internal:8443/v1",
                "https://other.internal/v1", "http://[::1]:8099/v1", "http://10.2.0.1:443/"):
        with pytest.raises(DestinationNotAllowed):
            await policy.check_url(url)


# -- pinned: the connection goes to the address checked -------------------------------------------

@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda m: m.__name__)
async def test_the_connection_goes_to_the_checked_address_with_the_original_host(
        server: tuple[int, list[str]], flavour: Any) -> None:
    port, hosts = server
    calls: list[str] = []
    # The system resolver says localhost is 127.0.0.1, where nothing listens on this port: only the
    # checked answer (127.0.0.2) reaches the server.
    policy = EgressPolicy(f"127.0.0.2:{port}", resolver=resolver({"localhost": ["127.0.0.2"]}, calls))
    backend = LoopbackOnly(flavour)
    async with client(policy, backend, flavour) as http:
        response = await http.get(f"http://localhost:{port}/v1/models")
        assert response.status_code == 200 and response.text == f"localhost:{port}"
    assert backend.connected == [("127.0.0.2", port)] and calls == ["localhost"] and hosts == [f"localhost:{port}"]


async def test_a_rebinding_answer_cannot_move_a_connection(server: tuple[int, list[str]]) -> None:
    port, _ = server
    answers = iter([["127.0.0.2"], ["169.254.169.254"]])
    calls: list[str] = []

    async def rebinding(host: str, _port: int) -> Sequence[str]:
        calls.append(host)
        return next(answers)

    policy = EgressPolicy(f"127.0.0.2:{port}", resolver=rebinding)
    backend = LoopbackOnly()
    async with client(policy, backend) as http:
        for _ in range(3):  # one connection, kept alive: resolved and checked once, used three times
            assert (await http.get(f"http://rebound.example:{port}/")).status_code == 200
    assert calls == ["rebound.example"]
    async with client(policy, backend) as http:  # a new connection resolves again: the new answer is refused
        with pytest.raises(DestinationNotAllowed):
            await http.get(f"http://rebound.example:{port}/")
    assert backend.connected == [("127.0.0.2", port)]


async def test_tls_keeps_the_original_server_name() -> None:
    seen: dict[str, Any] = {}

    class Stream(httpcore.AsyncNetworkStream):
        async def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                            timeout: float | None = None) -> httpcore.AsyncNetworkStream:  # noqa: ASYNC109
            seen["server_hostname"] = server_hostname
            raise httpcore.ConnectError("the test ends the handshake here")

        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
            raise AssertionError

        async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
            raise AssertionError

        async def aclose(self) -> None:
            return None

    class Fake(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                              local_address: str | None = None,
                              socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
            seen["connect"] = (host, port)
            return Stream()

    policy = EgressPolicy(resolver=resolver({"judge.example": [PUBLIC_V4]}))
    async with client(policy, Fake()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("https://judge.example/v1/models")
    assert seen == {"connect": (PUBLIC_V4, 443), "server_hostname": "judge.example"}


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda m: m.__name__)
def test_the_policy_transport_uses_the_pinned_backend(flavour: Any) -> None:
    transport = EgressPolicy().transport(flavour=flavour)
    assert isinstance(transport, flavour.AsyncHTTPTransport)
    assert isinstance(transport._pool._network_backend, PinnedBackend)
    assert isinstance(EgressPolicy().async_client(flavour=flavour), flavour.AsyncClient)
    with pytest.raises(TypeError, match="without a proxy"):
        pin(flavour.AsyncHTTPTransport(proxy="http://127.0.0.1:9"), EgressPolicy())


# -- one answer for refused, closed and filtered --------------------------------------------------

async def test_refused_closed_and_filtered_look_the_same() -> None:
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    closed_port = sock.getsockname()[1]
    sock.close()  # nothing listens there now

    class Filtered(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                              local_address: str | None = None,
                              socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
            raise httpcore.ConnectTimeout("timed out")

    policy = EgressPolicy(f"127.0.0.1:{closed_port},127.0.0.1:9", resolver=resolver({}))
    errors = []
    for url, backend in ((f"http://127.0.0.1:{closed_port + 1 if closed_port < 65535 else 1}/", LoopbackOnly()),
                         (f"http://127.0.0.1:{closed_port}/", LoopbackOnly()),
                         ("http://127.0.0.1:9/", Filtered()),
                         ("http://nowhere.example/", LoopbackOnly())):
        async with client(policy, backend) as http:
            with pytest.raises(httpx.TransportError) as caught:
                await http.get(url)
        errors.append((type(caught.value), str(caught.value)))
    assert errors == [(DestinationNotAllowed, NOT_ALLOWED)] * 4


# -- no detours: redirects and proxies ------------------------------------------------------------

async def test_redirects_are_not_followed_and_environment_proxies_not_used(
        server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    port, hosts = server
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    policy = EgressPolicy(f"127.0.0.2:{port}", resolver=resolver({}))
    async with policy.async_client(timeout=5) as http:
        response = await http.get(f"http://127.0.0.2:{port}/redirect")
    assert response.status_code == 302 and hosts == [f"127.0.0.2:{port}"]
