"""`python -m payrules` runs the command line."""

from payrules.cli import main

main()
