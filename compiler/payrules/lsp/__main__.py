"""`python -m payrules.lsp` runs the language server (as `payrules lsp` does)."""

from payrules.lsp import lsp_command

lsp_command()
