"""The analyst notebooks' data, in one call: the folder (or a generated demo company), checked, with its as-of.

Every notebook starts the same way: read ``EXPANSION_DATA`` (else generate a fixed demo
company into a scratch folder removed when the kernel stops), open it, check it against the
contract and take ``EXPANSION_AS_OF`` or the data end as the as-of (``DataSource.checked``).
The environment is passed in: the notebook's first cell hands over ``os.environ``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from features.io import DataSource, open_data

#: A fixed end date keeps the generated demo company the same on every run.
DEMO_AS_OF = dt.date(2026, 6, 30)


@dataclass
class NotebookData:
    """The opened, checked folder, the as-of the analysis reads up to, the data end, and a scratch folder for charts."""

    source: DataSource
    data_dir: Path
    as_of: dt.date
    data_end: dt.date
    work_dir: Path
    generated: bool  # a demo company was generated (no EXPANSION_DATA)


def open_notebook_data(environ: Mapping[str, str], say: Callable[[str], None] = print) -> NotebookData:
    """``EXPANSION_DATA`` (else a demo company of 500 accounts over 18 months), checked, as of ``EXPANSION_AS_OF``
    (else the data end). Raises ValueError naming a bad date or every contract violation."""
    from features.io import ContractError

    work_dir = Path(tempfile.mkdtemp(prefix="expansion-notebook-"))
    atexit.register(shutil.rmtree, work_dir, ignore_errors=True)
    generated = not environ.get("EXPANSION_DATA")
    if generated:
        from features.synth import generate

        data_dir = work_dir / "company"
        rows = generate(data_dir, accounts=500, months=18, seed=11, as_of=DEMO_AS_OF)
        say(f"generated a demo company into {data_dir}: {rows['accounts']} accounts, {rows['usage_daily']:,} usage rows")
    else:
        data_dir = Path(environ["EXPANSION_DATA"])
    as_of_text = environ.get("EXPANSION_AS_OF")
    try:
        as_of = dt.date.fromisoformat(as_of_text) if as_of_text else None
    except ValueError:
        raise ValueError(f"EXPANSION_AS_OF={as_of_text!r} is not a date (expected YYYY-MM-DD)") from None
    source = open_data(data_dir)
    try:  # the contract is checked over everything the folder holds; the as-of then bounds what the analysis reads
        chosen = source.checked(as_of)
    except ContractError as exc:
        raise ValueError(f"{data_dir} breaks the data contract:\n" + "\n".join(f"- {v}" for v in exc.violations)) from None
    say(f"data: {data_dir}  as of {chosen.day}  tables: {', '.join(source.present)}")
    data_end = chosen.day if as_of is None else source.data_end().day
    return NotebookData(source, data_dir, chosen.day, data_end, work_dir, generated)
