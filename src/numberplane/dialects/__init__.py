"""Vendor dialects: each module speaks one vendor's phone-number API in front of the core services.

Dialects translate only (vendor request -> core command -> vendor-shaped response); every rule
lives in the core, so each API gains it. Shared translation helpers are in ``common``.
"""
