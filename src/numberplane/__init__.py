"""Numberplane: the phone-number layer under voice-AI agents."""

__version__ = "0.1.0"
