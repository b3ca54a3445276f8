"""mailserver/smtp package."""
