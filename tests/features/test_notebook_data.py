"""The notebooks' first cell in one call: the given folder, checked, as of EXPANSION_AS_OF or the data end."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.notebook_data import open_notebook_data


def test_the_folder_is_checked_and_the_as_of_defaults_to_the_data_end(tiny_company) -> None:
    data = tiny_company()
    said: list[str] = []
    nb = open_notebook_data({"EXPANSION_DATA": str(data)}, said.append)
    try:
        assert (nb.as_of, nb.data_end, nb.data_dir, nb.generated) == (dt.date(2025, 7, 31), dt.date(2025, 7, 31), data, False)
        assert said == [f"data: {data}  as of 2025-07-31  tables: {', '.join(nb.source.present)}"] and nb.work_dir.is_dir()
    finally:
        nb.source.close()
    given = open_notebook_data({"EXPANSION_DATA": str(data), "EXPANSION_AS_OF": "2025-03-31"}, said.append)
    assert (given.as_of, given.data_end) == (dt.date(2025, 3, 31), dt.date(2025, 7, 31))
    given.source.close()


def test_a_bad_date_or_broken_data_is_a_value_error_naming_it(tiny_company) -> None:
    with pytest.raises(ValueError, match="EXPANSION_AS_OF='June'"):
        open_notebook_data({"EXPANSION_DATA": str(tiny_company()), "EXPANSION_AS_OF": "June"})

    def break_it(tables: dict[str, pd.DataFrame]) -> None:
        tables["usage_daily"].loc[0, "events"] = -5

    with pytest.raises(ValueError, match="breaks the data contract:\n- usage_daily.events"):
        open_notebook_data({"EXPANSION_DATA": str(tiny_company(break_it))})
