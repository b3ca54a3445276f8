"""`govmail check`: a doctor that inspects an instance and says what is wrong and how to fix it.

Each check is a small function returning ``CheckResult`` values (results.py); runner.py calls them
in order over one configuration, a database opened without migrating, and an injected clock.
The checks never change the instance: no migration, no key creation, no file written.
"""
