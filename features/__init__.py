"""Feature layer: settings, the data contract, the synthetic company, revenue movements and point-in-time features."""
