"""Outbox events, webhook delivery and the audit trail."""
