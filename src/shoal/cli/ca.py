"""`shoal ca`: the cluster certificate authority."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    rich_markup_mode=None,
    help="Create the cluster CA and issue certificates.",
    no_args_is_help=True,
)

TlsDir = Annotated[
    Path | None,
    typer.Option("--dir", help="TLS directory [default: $SHOAL_HOME/tls]", show_default=False),
]


def _tls_dir(d: Path | None) -> Path:
    from shoal.core.config import Settings

    return d if d is not None else Settings.load().tls_dir


@app.command("init")
def init(
    dir: TlsDir = None,
    force: Annotated[bool, typer.Option(help="Replace an existing CA.")] = False,
) -> None:
    """Create the cluster CA (ca.crt, ca.key) and a client certificate."""
    from shoal.core import tls

    d = _tls_dir(dir)
    path = tls.init_ca(d, force=force)
    ident = tls.issue(d, tls.CLIENT_NAME, role=tls.OPERATOR)
    print(f"CA: {path}\nclient certificate: {ident.cert}")


@app.command("issue")
def issue(
    name: Annotated[
        str,
        typer.Argument(help="Node or client name (the certificate's CN), or a node set: one each."),
    ],
    dir: TlsDir = None,
    san: Annotated[
        list[str] | None, typer.Option("--san", help="Extra DNS name or IP (repeatable).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write NAME.crt/.key here.")] = None,
    role: Annotated[
        str,
        typer.Option(
            help="operator (may start work and change the fleet), controller (the"
            " fleet controller) or node (an agent: serves and relays, commands nothing)."
        ),
    ] = "node",
    force: Annotated[bool, typer.Option(help="Replace an existing certificate and key.")] = False,
) -> None:
    """Issue a certificate for an agent or a client, signed by the cluster CA
    (`shoal ca issue 'cn[1-64]'` issues one per node)."""
    from shoal.core import tls
    from shoal.core.nodeset import parse
    from shoal.errors import UsageError

    d = _tls_dir(dir)
    names = list(parse(name))
    if len(names) > 1 and san:
        raise UsageError("--san names one host: issue a node set without it")
    if not force:
        where = out or d
        there = [p for n in names for p in (where / f"{n}.crt", where / f"{n}.key") if p.exists()]
        if there:
            raise tls.TLSError(f"{there[0]} already exists: pass --force to replace it")
    for n in names:
        ident = tls.issue(d, n, sans=san or [], out_dir=out, role=role)
        print(f"{ident.cert}\n{ident.key}\nrole: {role}")
