"""Outbound delivery: the queue table, routing, the SMTP client, DSNs and the workers."""
