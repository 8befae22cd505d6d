"""``python -m serving.cli``: the same app as the ``expansion`` script."""

from serving.cli import app

app()
