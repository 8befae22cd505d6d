"""Serving layer: the scorer, the HTTP service, batch scoring into CRM sinks, and the CLI."""
