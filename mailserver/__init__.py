"""mailserver package."""
