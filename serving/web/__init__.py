"""Server-rendered pages for CSMs and CS leaders, mounted on the scoring service at ``/ui`` (see ``app``)."""
