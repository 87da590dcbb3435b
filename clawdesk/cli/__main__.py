"""`python -m clawdesk.cli`: the same as the `clawdesk` command."""

from clawdesk.cli import main

main()
