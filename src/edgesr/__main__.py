"""`python -m edgesr`: the command line without the installed `edgesr` script."""
from edgesr.cli import main

main()
