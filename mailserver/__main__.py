"""`python -m mailserver` is the `govmail` command."""

from mailserver.cli import main

main()
