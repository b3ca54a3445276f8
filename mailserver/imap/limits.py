"""Named limits of the IMAP server, with where they come from.

Line and literal limits are enforced by the receiver (configured from ``[imap]`` in the config);
the ones here bound what one session may hold or cost the server.
"""

from __future__ import annotations

# RFC 9051 section 5.4: the autologout timer must be at least 30 minutes, except before
# authentication, where a shorter timer is allowed.
PREAUTH_AUTOLOGOUT_SECONDS = 60.0

# RFC 2177 section 3: clients re-issue IDLE at least every 29 minutes; we end IDLE after this.
IDLE_TIMEOUT_SECONDS = 29 * 60.0

# Largest literal accepted before authentication: enough for a LOGIN name or password, too
# small for anyone to park APPEND-sized data in memory without credentials.
PREAUTH_MAX_LITERAL = 8 * 1024

# Failed LOGIN/AUTHENTICATE attempts on one connection before it is closed with BYE.
MAX_AUTH_FAILURES_PER_CONNECTION = 3

# Committed changes a session may hold before it has told its client; beyond this the
# session is closed (with BYE), so a client that never issues a command cannot grow memory.
MAX_PENDING_CHANGES = 100_000

# Messages whose rows FETCH loads from the database in one query.
FETCH_BATCH = 500

# Octets of responses written before FETCH waits for the client to read them.
FETCH_FLUSH_BYTES = 256 * 1024

# Largest SEARCH TEXT/BODY key (octets after folding): search keys are phrases, not documents.
MAX_SEARCH_KEY = 1024

# Socket read size.
READ_CHUNK = 64 * 1024
