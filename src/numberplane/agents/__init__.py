"""Agents: what answers a call, versioned so a number can pin one or follow the latest."""
