"""Importers: the tools CS teams already run (Stripe, Salesforce, HubSpot, Segment, Amplitude, Mixpanel), as a
warehouse connector lands them, into the data contract. Entry point: :func:`features.importers.run.import_sources`."""
