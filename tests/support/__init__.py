"""Helpers shared by the test suite (throwaway services, fixtures data)."""
