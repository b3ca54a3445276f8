"""Page sizes of admin lists, shared by the admin API, storage.listing and the CLI.

A module without imports, so that `govmail` can declare its --limit option without loading the
storage layer (tests/test_cli_start.py).
"""

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
