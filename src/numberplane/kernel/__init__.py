"""The shared kernel: what every domain package builds on and none of them owns.

Database and unit of work, settings, errors, ids, encryption, outgoing requests, E.164
parsing, pagination, change notification, the outbox, and request authentication. Nothing
here imports a domain package (``tests/test_architecture.py`` holds it to that).
"""
