"""Helpers shared by the test suite: throwaway services (PostgreSQL) and server harnesses."""
