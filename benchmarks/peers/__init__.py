"""Reference servers (Dovecot, Postfix) run on loopback for like-with-like comparisons."""
