"""Egress: which network destinations the suite's outgoing HTTP calls to tenant-chosen URLs may reach.

A tenant names URLs (a judge's `base_url`, the notifier's channel URLs); the process that calls them sits
inside the operator's network, next to Postgres, Redis, the suite's own APIs and the cloud's metadata
service. `EgressPolicy` keeps those calls on the public internet:

- **Resolve, then refuse.** A URL's host is resolved (every address, IPv4 and IPv6), and the destination is
  refused when *any* address is not public: loopback, private (RFC 1918, 100.64/10 shared space),
  link-local (169.254/16, the metadata service 169.254.169.254 among them; fe80::/10), unspecified
  (0.0.0.0, which reaches the local host), multicast, reserved, unique-local IPv6 (fc00::/7), and the IPv6
  forms that carry such an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, 6to4 2002::/16, NAT64 64:ff9b::/96).
- **Unless the operator allows it.** `LLMOPS_EGRESS_ALLOW` lists `host:port` entries
  (`127.0.0.1:8099,judge.internal:443,[fd00::7]:8000,10.1.0.0/16:443`). A name entry allows that name on
  that port whatever it resolves to; an address or network entry allows those addresses on that port,
  whatever name led there. Nothing else that is not public is reachable: not the rest of loopback, not
  another port of an allowed host.
- **Pinned.** The check is made by the connection itself (`EgressPolicy.transport`: an httpx transport, or
  an httpx2 one for openai>=3, whose network backend resolves, checks, and connects to an address it
  checked), so the address checked
  is the address connected to: a DNS answer that changes between a check and the connection (rebinding)
  cannot move it. The request keeps its URL, so the `Host` header and TLS's server name (SNI, and the
  certificate check) are the original host's. Redirects are not followed and environment proxies are
  not used (either would take the request past the check).
- **One answer.** A tenant sees one error, `DestinationNotAllowed` ("destination not allowed"), for every
  way a connection cannot be made: refused by the policy, a name that does not resolve, a closed port,
  a filtered one (the connection attempt times out), a reset. So results and error messages are no port
  scanner. The reason (which address, which rule, which socket error) is logged for the operator only.

`check_url` is the same check for validation (an evaluator's `base_url` is refused when it is created);
the connection checks again, since DNS may answer differently later. The resolver is a parameter
(`Resolver`): tests give names fixed answers and never touch DNS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

log = logging.getLogger("llmops_shared.egress")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`(host, port) -> addresses` (text): every address the name stands for. Raise `OSError` when it has none."""

NOT_ALLOWED = "destination not allowed"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
DEFAULT_PORTS = {"http": 80, "https": 443}


class DestinationNotAllowed(httpx.ConnectError):
    """A connection that may not, or could not, be made. Its message is the same whatever the reason
    (`NOT_ALLOWED`); `reason` says why, for logs only: never show it to a tenant."""

    def __init__(self, reason: str = "", *, request: httpx.Request | None = None) -> None:
        super().__init__(NOT_ALLOWED, request=request)
        self.reason = reason


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address of `host` from the system's resolver (`getaddrinfo`, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _unique(str(info[4][0]) for info in infos)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def is_public(address: IPAddress) -> bool:
    """Whether `address` is on the public internet: not loopback, private, link-local, unspecified,
    multicast, reserved, shared (100.64/10) or unique-local, nor an IPv6 form of such an IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
        if address.teredo is not None:
            return False
    return bool(address.is_global and not (address.is_multicast or address.is_reserved or address.is_loopback
                                           or address.is_link_local or address.is_unspecified
                                           or address.is_private))


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class AllowEntry:
    """One operator allowance: a name, or an address network, on one port."""

    port: int
    name: str | None = None
    network: IPNetwork | None = None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        """`host:port`, `a.b.c.d:port`, `a.b.c.d/nn:port`, `[v6]:port` or `[v6/nn]:port`."""
        raw = text.strip()
        host, sep, port_text = raw.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"egress allowance {raw!r}: want host:port, e.g. 127.0.0.1:8099 or judge.internal:443")
        if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
            raise ValueError(f"egress allowance {raw!r}: write an IPv6 address in brackets, e.g. [fd00::1]:443")
        host = _normal_host(host)
        try:
            return cls(int(port_text), network=ipaddress.ip_network(host, strict=False))
        except ValueError:
            pass
        if not host or any(not part or len(part) > 63 for part in host.split(".")) or "/" in host or " " in host:
            raise ValueError(f"egress allowance {raw!r}: not a host name, address or network")
        return cls(int(port_text), name=host)

    def allows(self, host: str, port: int, address: IPAddress) -> bool:
        if port != self.port:
            return False
        if self.name is not None:
            return _normal_host(host) == self.name
        assert self.network is not None
        return address.version == self.network.version and address in self.network


def parse_allow(value: str | Iterable[str]) -> tuple[AllowEntry, ...]:
    """The entries of `LLMOPS_EGRESS_ALLOW` (comma- or space-separated); `ValueError` naming a bad one."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return tuple(AllowEntry.parse(item) for item in items if item.strip())


def url_destination(url: str | httpx.URL) -> tuple[str, int]:
    """(host, port) of an http(s) URL; `DestinationNotAllowed` for anything else."""
    text = str(url)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise DestinationNotAllowed(f"not a URL: {text[:200]!r}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise DestinationNotAllowed(f"not an http(s) URL with a host: {text[:200]!r}")
    return parts.hostname, port or DEFAULT_PORTS[parts.scheme]


class EgressPolicy:
    """Which destinations outgoing calls to tenant-chosen URLs may reach (module docstring)."""

    def __init__(self, allow: str | Iterable[str] = (), *, resolver: Resolver | None = None,
                 connect_timeout_s: float = 10.0) -> None:
        self.allow = parse_allow(allow)
        self.resolver: Resolver = resolver or system_resolver
        self.connect_timeout_s = connect_timeout_s

    def permits(self, host: str, port: int, address: IPAddress) -> bool:
        """Whether `address` (one of `host`'s) may be connected to on `port`."""
        return is_public(address) or any(entry.allows(host, port, address) for entry in self.allow)

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """`host`'s addresses, every one of them permitted; else `DestinationNotAllowed`."""
        literal = _address(_normal_host(host))
        if literal is not None:
            found: list[IPAddress] = [literal]
        else:
            try:
                texts = await self.resolver(_normal_host(host), port)
            except (OSError, UnicodeError, ValueError) as exc:
                raise self.refuse(host, port, f"does not resolve: {exc}") from None
            found = [a for a in (_address(t) for t in _unique(texts)) if a is not None]
            if not found:
                raise self.refuse(host, port, "resolves to no address")
        refused = [str(a) for a in found if not self.permits(host, port, a)]
        if refused:
            raise self.refuse(host, port, f"resolves to {', '.join(refused)}: not public, not allowed")
        return found

    async def check_url(self, url: str | httpx.URL) -> list[IPAddress]:
        """The check a connection to `url` makes, made now: its addresses, or `DestinationNotAllowed`."""
        host, port = url_destination(url)
        return await self.addresses(host, port)

    def refuse(self, host: str, port: int, why: str) -> DestinationNotAllowed:
        reason = f"{host}:{port} {why}"
        log.warning("egress refused", extra={"destination": f"{host}:{port}", "reason": reason[:500]})
        return DestinationNotAllowed(reason)

    def transport(self, *, flavour: ModuleType = httpx, **kwargs: Any) -> Any:
        """An `AsyncHTTPTransport` of `flavour` (the httpx module, or a fork with its API: httpx2, which
        openai>=3 speaks) whose connections go only where this policy permits, to the address it checked.
        `kwargs` go to the transport (`verify`, `http2`, `limits`); it never uses a proxy."""
        transport = flavour.AsyncHTTPTransport(trust_env=False, **kwargs)
        return pin(transport, self)

    def async_client(self, *, flavour: ModuleType = httpx, **kwargs: Any) -> Any:
        """An `AsyncClient` of `flavour` on `transport()`: no redirects followed, no environment proxies."""
        kwargs.setdefault("follow_redirects", False)
        return flavour.AsyncClient(transport=self.transport(flavour=flavour), trust_env=False, **kwargs)


def pin(transport: Any, policy: EgressPolicy, inner: Any = None) -> Any:
    """`transport` (an httpx or httpx2 `AsyncHTTPTransport` built without a proxy) with its connection pool's
    network backend wrapped by `PinnedBackend`: every connection it opens is checked and pinned.

    httpx builds its pool without a way to name the network backend, so the pool's is replaced
    (tests/unit/shared/test_egress.py checks that connections go through it)."""
    pool = transport._pool
    if type(pool).__name__ != "AsyncConnectionPool" or not hasattr(pool, "_network_backend"):
        raise TypeError("egress: only a transport without a proxy can be pinned")
    pool._network_backend = PinnedBackend(policy, inner if inner is not None else pool._network_backend)
    return transport


def _connect_errors() -> tuple[type[BaseException], ...]:
    """What a network backend raises when a connection cannot be made (httpcore's, httpcore2's, the OS's)."""
    errors: list[type[BaseException]] = [httpcore.ConnectError, httpcore.ConnectTimeout, OSError]
    with contextlib.suppress(ImportError):
        import httpcore2

        errors += [httpcore2.ConnectError, httpcore2.ConnectTimeout]
    return tuple(errors)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend (httpcore's interface, which httpcore2 shares) with the policy's check in
    `connect_tcp`: resolve, check every address, connect to a checked one (through `inner`, the pool's own
    backend). Every connection failure becomes `DestinationNotAllowed`."""

    def __init__(self, policy: EgressPolicy, inner: Any = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()
        self._failures = _connect_errors()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> Any:
        addresses = await self.policy.addresses(host, port)
        limit = self.policy.connect_timeout_s if timeout is None else min(timeout, self.policy.connect_timeout_s)
        failures = []
        for address in addresses:
            try:
                return await self.inner.connect_tcp(str(address), port, timeout=limit, local_address=local_address,
                                                    socket_options=socket_options)
            except self._failures as exc:
                failures.append(f"{address}: {type(exc).__name__} {exc}")
        raise self.policy.refuse(host, port, "cannot connect: " + "; ".join(failures))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
                                  socket_options: Iterable[Any] | None = None) -> Any:
        raise DestinationNotAllowed("unix sockets are not a destination")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def egress_policy(settings: Any, *, resolver: Resolver | None = None) -> EgressPolicy:
    """The policy of a process's settings (`LLMOPS_EGRESS_ALLOW`, `CommonSettings.egress_allow`)."""
    return EgressPolicy(settings.egress_allow, resolver=resolver)
