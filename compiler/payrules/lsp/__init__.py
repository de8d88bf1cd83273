"""`payrules lsp` → a language server for rule files over stdio (the `lsp` extra: pygls).

Importing this package does not import pygls: the command imports the server when it runs,
so `payrules --help` works without the extra.
"""

from __future__ import annotations

import click

MISSING_EXTRA = ("payrules lsp needs the language server extra: pip install 'payrules[lsp]' "
                 "(it installs pygls and lsprotocol)")


@click.command(name="lsp")
def lsp_command() -> None:
    """Run the language server for *.payer files on stdin/stdout (for an editor to start)."""
    try:
        from payrules.lsp.server import main
    except ImportError as error:
        if error.name not in ("pygls", "lsprotocol") and not str(error.name).startswith(("pygls.", "lsprotocol.")):
            raise
        raise click.ClickException(MISSING_EXTRA) from None
    main()
