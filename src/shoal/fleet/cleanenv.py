"""The environments the controller gives the processes it starts.

Nothing the controller holds (a Statuspage key, cloud credentials, its own
settings) reaches a host it makes or a program it runs unless the operator
names it: each gets a minimal environment, as a login would give, plus only
what it needs.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from pathlib import Path

BASE = ("PATH", "LANG", "LC_ALL", "TZ")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# how an HTTPS client finds its way out; Libcloud's calls need them where they are set
NETWORK = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)


def _user() -> dict[str, str]:
    try:
        pw = pwd.getpwuid(os.getuid())
    except KeyError:
        return {}
    return {"USER": pw.pw_name, "LOGNAME": pw.pw_name, "SHELL": pw.pw_shell or "/bin/sh"}


def _pick(names: Iterable[str]) -> dict[str, str]:
    return {k: os.environ[k] for k in names if k in os.environ}


def base() -> dict[str, str]:
    """PATH, LANG, LC_ALL, TZ, HOME, USER, LOGNAME, SHELL; PYTHONPATH when set,
    so a shoal run from a source tree finds itself."""
    env = {"PATH": DEFAULT_PATH, **_pick((*BASE, "HOME", "PYTHONPATH")), **_user()}
    return env


def host_env(home: Path) -> dict[str, str]:
    """A local-provider host: a fresh machine whose home (and SHOAL_HOME) is its own
    directory; SHOAL_METADATA* tell its agent where (or whether) to look for
    cloud metadata, as a real host's would find it."""
    env = base()
    env.update(HOME=str(home), SHOAL_HOME=str(home))
    env.update({k: v for k, v in os.environ.items() if k.startswith("SHOAL_METADATA")})
    return env


def program_env(names: Iterable[str]) -> dict[str, str]:
    """A provider program (``command``, or the Libcloud call): the base, the proxy
    and CA settings, and the variables the operator named in ``provider_env``."""
    return {**base(), **_pick(NETWORK), **_pick(names)}


def job_env() -> dict[str, str]:
    """A job's fan-out (`shoal run`/`ping` as a client): the base and shoal's client
    settings (SHOAL_HOME, SHOAL_TLS_DIR, ...), none of the controller's own."""
    env = base()
    env.update(
        {
            k: v
            for k, v in os.environ.items()
            if k.startswith("SHOAL_") and not k.startswith(("SHOAL_CONTROLLER_", "SHOAL_GATEWAY_"))
        }
    )
    return env
