"""The HTTP API: the BentoML service, its request and answer models, the snapshot it serves and how it stops.

``service`` holds the endpoints; ``schemas`` the request and answer models (the answer derives
from :mod:`serving.scoring.score_schema`); ``snapshot`` and ``live_snapshot`` the scored feature
snapshot accounts are looked up in; ``feature_checks`` what a caller may supply; ``forecast``
``POST /forecast``; ``drain`` the graceful stop; ``deployment`` publishing what serves.
"""
