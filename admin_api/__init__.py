"""admin_api package."""
