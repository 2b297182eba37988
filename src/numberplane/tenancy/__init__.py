"""Orgs, API keys and the three ways a key is presented."""
