"""Host names as the Host header, Origin and ``--allow-host`` give them: parsed and spelled one
way. Standard library only, so the command line checks ``--allow-host`` without loading Flask;
the checks that use them are in web/origin.py."""
from __future__ import annotations

import ipaddress

__all__ = ["split_host", "canonical", "host_name"]


def split_host(value: str | None) -> tuple[str, str | None] | None:
    """``"Example.org:5000"`` -> ``("example.org", "5000")``, ``"[::1]"`` -> ``("::1", None)``;
    None when it is not a host[:port] at all."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:] if rest else None
    else:
        name, sep, port = value.partition(":")
        port = port if sep else None
    if not name or (port is not None and not (port.isascii() and port.isdigit())):
        return None
    if any(c.isspace() or c in "/@?#\\[]" for c in name):
        return None
    return name, port


def canonical(name: str) -> str:
    """One spelling per address: ``fd00:0::2`` is ``fd00::2``, ``::ffff:10.0.0.1`` is
    ``10.0.0.1``, ``fe80::1%eth0`` is ``fe80::1``; a host name stays as it is."""
    try:
        ip = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return name
    return str(getattr(ip, "ipv4_mapped", None) or ip)


def host_name(value: str) -> str:
    """The name an ``--allow-host`` (or ``--host``) value allows; ValueError for a port, a URL
    or nothing. An IPv6 address may come with or without brackets."""
    try:
        return canonical(str(ipaddress.ip_address(value.strip().strip("[]"))))
    except ValueError:
        pass
    parts = split_host(value)
    if parts is None or parts[1] is not None:
        raise ValueError(f"--allow-host takes a host name or address without port or "
                         f"scheme, e.g. --allow-host mylaptop.local (got {value!r})")
    return canonical(parts[0])
