"""mailserver/imap package."""
