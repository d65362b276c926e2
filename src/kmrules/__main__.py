"""`python -m kmrules` runs the CLI."""

from kmrules.cli import main

main()
