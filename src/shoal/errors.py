"""One exception hierarchy for shoal. The CLI turns any ShoalError into a
one-line message on stderr and the exit code it carries (documented in the
README, "Exit status").

    ShoalError                  1  EXIT_FAILED
    ├── UsageError              2  EXIT_USAGE: bad input, nothing ran
    │   ├── NodeSetError           a malformed node set or unknown @group
    │   └── RequestError           an HTTP request body a service refuses (status)
    ├── ConfigError             5  EXIT_CONFIG: config, inventory, certificate, state
    │   ├── TLSError               certificates or keys missing or not matching
    │   └── ClusterError           the local cluster is in the wrong state for it
    ├── PeerError               4  EXIT_UNREACHABLE: a node unreachable, or refusing us
    │   └── GrantError             a work grant that does not hold
    ├── SandboxError            1  a resource request one node cannot honour (REFUSED)
    ├── TransferError           1  a copy or gather one node cannot complete
    │   └── Claimed                another writer holds the transfer's part
    ├── ServiceError            6  EXIT_SERVICE: a service shoal needs failed
    │   ├── ProviderError          the fleet's host provider failed
    │   └── UpstreamError          a gateway backend gave no usable answer
    └── Interrupted           130  Ctrl-C: the work was cancelled everywhere
"""

from __future__ import annotations

# Exit codes of every shoal command. For fan-out commands the worst state
# that occurred wins: UNREACHABLE/REFUSED > TIMEOUT > FAILED.
EXIT_OK = 0
EXIT_FAILED = 1  # some node's command failed (non-zero status or local error)
EXIT_USAGE = 2  # bad input; nothing ran
EXIT_TIMEOUT = 3  # some node timed out
EXIT_UNREACHABLE = 4  # some node could not be reached or refused us
EXIT_CONFIG = 5  # configuration, certificate or state problem; nothing ran
EXIT_SERVICE = 6  # a service shoal needs (database, controller, backend) failed
EXIT_INTERRUPTED = 130  # Ctrl-C


class ShoalError(Exception):
    """Base of every error shoal raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class UsageError(ShoalError):
    """The user asked for something malformed: nothing was started."""

    exit_code = EXIT_USAGE


class NodeSetError(UsageError):
    """A malformed node set or an unknown @group."""


class RequestError(UsageError):
    """A client's HTTP request body a service refuses, with the HTTP status it gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(ShoalError):
    """A configuration file, inventory or certificate is missing or invalid."""

    exit_code = EXIT_CONFIG


class TLSError(ConfigError):
    """Certificates or keys are missing, unreadable or do not match."""


class ClusterError(ConfigError):
    """The local cluster is in the wrong state for what was asked."""


class PeerError(ShoalError):
    """A node could not be reached in time, or refused us (TLS, role, grant)."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class GrantError(PeerError):
    """A request whose grant does not hold; the text says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, refused=True)


class SandboxError(ShoalError):
    """A resource request a node cannot honour (its node is REFUSED); the text says why."""


class TransferError(ShoalError):
    """This node cannot complete a copy or gather; the reason is its alone."""


class Claimed(TransferError):
    """Another writer (another agent on this filesystem) holds this transfer's part."""


class ServiceError(ShoalError):
    """A service shoal depends on is unavailable or answered with an error."""

    exit_code = EXIT_SERVICE


class ProviderError(ServiceError):
    """The fleet's host provider (a command, Libcloud, local hosts) failed."""


class UpstreamError(ServiceError):
    """A gateway backend gave no usable answer (refused, cut, truncated, garbled)."""


class Interrupted(ShoalError):
    """The user pressed Ctrl-C; the work was cancelled everywhere."""

    exit_code = EXIT_INTERRUPTED


class SchedulingError(ShoalError):
    """A function call the scheduler cannot serve; ``status`` is the gRPC code
    it answers with (NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
