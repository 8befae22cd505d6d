"""What the alerts jobs did, on the console: a run, a dry run over days, each rule's track record.

Shared by ``expansion alerts`` and ``expansion score`` (which alerts on the snapshot it scored).
"""

from __future__ import annotations

from rich.table import Table

from serving.cli.common import console, err_console


def print_run(result) -> None:  # noqa: ANN001 - serving.alerts.run.AlertRun
    """The run in a few lines and a table of the new episodes per rule and decision."""
    verb = "would send" if result.dry_run else "queued"
    console.print(f"alerts as of {result.as_of}: {len(result.episodes):,} new episode(s) "
                  f"({result.rearmed:,} re-entries within the re-arm window ignored); {verb} "
                  f"{result.count('queued'):,}, held back by the weekly cap {result.count('held'):,}, "
                  f"snoozed {result.count('snoozed'):,}, without a route {result.count('unrouted'):,}", highlight=False)
    for name, why in result.inactive.items():
        console.print(f"rule {name} inactive: {why}", highlight=False)
    for name, why in getattr(result, "withheld", {}).items():
        console.print(f"rule {name} not sent on this company: {why} (episodes are recorded; a later "
                      f"`alerts backtest` that clears it sends it again)", highlight=False)
    if not result.routed and not result.dry_run and len(result.episodes):
        err_console.print("no routing file: nothing was delivered (set EXPANSION_ALERTS_ROUTING or write <home>/alerts/routing.toml)")
    if len(result.episodes):
        table = Table(title="new episodes by rule")
        for col in ("rule", "queued", "held", "snoozed", "unrouted", "not sent"):
            table.add_column(col, justify="left" if col == "rule" else "right")
        counts = result.episodes.groupby(["rule", "status"]).size().unstack(fill_value=0)
        for rule, row in counts.iterrows():
            table.add_row(str(rule), *[f"{int(row.get(s, 0)):,}" for s in ("queued", "held", "snoozed", "unrouted", "withheld")])
        console.print(table)
    held = result.episodes[result.episodes["status"] == "held"] if len(result.episodes) else result.episodes
    for e in held.head(20).itertuples():
        console.print(f"held back (weekly cap): {e.rule} on account {e.account_id} for {e.csm_owner}", highlight=False)
    if len(held) > 20:
        console.print(f"... and {len(held) - 20:,} more held back", highlight=False)
    if result.delivery is not None:
        d = result.delivery
        console.print(f"delivered {d.sent:,} message(s) in {d.attempts:,} attempt(s) ({d.repeats:,} marked as repeats); "
                      f"{len(d.kept):,} kept for the next run; {len(d.parked):,} parked (refused for good)", highlight=False)
        for m in d.kept[:20]:
            err_console.print(f"kept: {m['channel']} to {m['destination']} ({m['csm_owner']}): {m['last_error']}", highlight=False)
        for m in d.parked[:20]:
            err_console.print(f"parked: {m['channel']} to {m['destination']} ({m['csm_owner']}): {m['last_error']}",
                              highlight=False)


def print_simulation(sim, cap: int) -> None:  # noqa: ANN001 - serving.alerts.run.Simulation
    w = sim.weekly()
    console.print(f"dry run {sim.start} to {sim.end} (daily runs, nothing written or sent): {len(sim.episodes):,} episodes "
                  f"({sim.rearmed:,} re-entries within the re-arm window ignored); over {w['weeks']} full ISO week(s) and "
                  f"{w['csms']} CSMs, alerts per CSM per week: median {w['median']:g}, mean {w['mean']:.2f}, max {w['max']} "
                  f"(cap {cap}; without the cap: median {w['uncapped_median']:g}, max {w['uncapped_max']}); held back by the cap: {w['held_back']:,}. Accounts without a CSM (the \"*\" route, capped as one): "
                  f"{w['unowned_queued']:,} queued, {w['unowned_held']:,} held", highlight=False)
    full = sim.full_weeks()
    if full["csm_owner"].nunique() <= 30:
        table = Table(title="alerts per CSM per full week")
        weeks = sorted(full["week"].unique())
        table.add_column("csm_owner")
        for week in weeks:
            table.add_column(f"week of {week}", justify="right")
        pivot = full.pivot(index="csm_owner", columns="week", values="alerts")
        for csm, row in pivot.iterrows():
            table.add_row(str(csm), *[str(int(row[wk])) for wk in weeks])
    else:
        table = Table(title="CSM-weeks by alerts received in the week")
        table.add_column("alerts in the week", justify="right")
        table.add_column("CSM-weeks", justify="right")
        for n, count in full["alerts"].value_counts().sort_index().items():
            table.add_row(str(n), f"{count:,}")
    console.print(table)
    if len(sim.episodes):
        by_rule = sim.episodes.groupby(["rule", "status"]).size().unstack(fill_value=0)
        rules = Table(title="episodes by rule over the window")
        for col in ("rule", "queued", "held", "withheld"):
            rules.add_column(col, justify="left" if col == "rule" else "right")
        for rule, row in by_rule.iterrows():
            rules.add_row(str(rule), *[f"{int(row.get(s, 0)):,}" for s in ("queued", "held", "withheld")])
        console.print(rules)
    for line in sim.notes():  # inactive rules, and rules not sent on this company (withheld)
        console.print(line, highlight=False)


def print_track_record(record, inactive: dict[str, str], horizon: int, symbol: str, rules=None) -> None:  # noqa: ANN001
    from serving.scoring.wording import money

    months = int(record["months"].max()) if len(record) else 0
    table = Table(title=f"alert rules replayed over {months} labelled month ends (outcome within {horizon} days; 90 % intervals)")
    from serving.alerts.backtest import sending

    by_name = {r.name: r for r in rules} if rules else {}
    for col in ("rule", "outcome", "episodes", "accounts", "outcome rate", "base rate (eligible accounts)", "lift",
                "ARR at fire", "outcome ARR", "sent"):
        table.add_column(col, justify="left" if col in ("rule", "outcome", "base rate (eligible accounts)") else "right")
    verdicts = {}
    for r in record.to_dict("records"):
        rate = "-" if not r["episodes"] else (f"{100 * r['rate']:.1f} % ({100 * r['rate_low']:.1f}-{100 * r['rate_high']:.1f}; "
                                             f"{r['positives']:,}/{r['episodes']:,})")
        lift = "-" if not r["episodes"] else f"{r['lift']:.2f} ({r['lift_low']:.2f}-{r['lift_high']:.2f})"
        rule = by_name.get(r["rule"])
        verdicts[r["rule"]] = sending(rule, r) if rule is not None else (True, "")
        table.add_row(r["rule"], r["outcome"], f"{r['episodes']:,}", f"{r['accounts']:,}", rate,
                      f"{100 * r['base_rate']:.1f} % of {r.get('eligible', 'all accounts')} (n={r['base_rows']:,})", lift,
                      money(r["arr_at_fire"], symbol), money(r["outcome_arr"], symbol),
                      "yes" if verdicts[r["rule"]][0] else "NOT SENT")
    console.print(table)
    for name, (ok, why) in verdicts.items():
        if not ok:
            console.print(f"rule {name} not sent on this company: {why}", highlight=False)
        elif why.startswith("forced"):
            console.print(f"rule {name} sent: {why}", highlight=False)
    for name, why in inactive.items():
        console.print(f"rule {name} inactive: {why}", highlight=False)
