"""The one adapter to BentoML internals: a model store at a folder of our choosing, and request metrics reset.

BentoML fixes its model store from ``BENTOML_HOME`` the first time it is used in a
process; scoring needs the store of the home it is asked about, so it opens one
explicitly. Every use of a BentoML API that is not public lives here, and
``tests/serving/scoring/test_bento_adapter.py`` fails loudly, naming the release these hooks were
written against (``BENTOML_VERSION``, pinned in ``constraints.txt``), when one changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: The BentoML release these hooks were written and tested against.
BENTOML_VERSION = "1.4.39"


class BentoChanged(RuntimeError):
    """A BentoML internal this module relies on is gone or changed: re-check it against the new release."""


def bentoml_home() -> Path:
    """BentoML's home folder as BentoML resolves it: ``BENTOML_HOME``, else ``~/bentoml``."""
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml").expanduser()


def model_store(folder: Path | None = None) -> Any:
    """A BentoML ``ModelStore``: over ``folder``, else the one a served bento brought, else ``<bentoml_home()>/models``.

    ``BENTOML_HOME`` is read at call time, not once per process as BentoML itself does.
    """
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer
        from bentoml._internal.models import ModelStore
    except ImportError as exc:  # pragma: no cover - only on a BentoML that moved them
        raise BentoChanged(f"BentoML's ModelStore moved (written for BentoML {BENTOML_VERSION}): {exc}") from exc
    if folder is None:
        current = BentoMLContainer.model_store.get()
        home_store = Path(BentoMLContainer.model_store_dir.get())
        path = getattr(current, "_path", None)
        if path is None:
            raise BentoChanged(f"ModelStore has no _path (written for BentoML {BENTOML_VERSION})")
        if Path(path).resolve() != home_store.resolve():
            return current  # `bentoml serve` of a built bento points the container at the bento's own models
    target = folder or bentoml_home() / "models"
    target.mkdir(parents=True, exist_ok=True)
    return ModelStore(str(target))


def reset_request_metrics() -> None:
    """Forget BentoML's request metrics, which it registers once per process, so a second ASGI app can start."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        registry = BentoMLContainer.metrics_client.get().prometheus_client.REGISTRY
        owned = list(registry._collector_to_names.items())  # noqa: SLF001 - prometheus_client has no public listing
    except (ImportError, AttributeError) as exc:
        raise BentoChanged(f"BentoML's metrics registry moved (written for BentoML {BENTOML_VERSION}): {exc}") from exc
    for collector, names in owned:
        if any(n.startswith("bentoml_") for n in names):
            registry.unregister(collector)
