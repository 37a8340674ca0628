"""shoal.cli: the `shoal` command (entry point shoal.cli.main:main). One module
per command group: each parses, calls the library (shoal.fanout, shoal.fleet,
shoal.gateway...) and prints; it holds no logic a library user would need."""

__all__: list[str] = []
