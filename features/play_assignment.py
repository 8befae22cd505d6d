"""Which eligible accounts a play is recommended to, and which are held out as its control group.

An account is *eligible* for a play at a scoring run when the recommender would choose that
play for it (its premise holds, its talk track fills in, and no play before it in line does).
The first time that happens in an episode, the account is assigned to ``recommend`` or
``hold_out`` by a seeded hash of (account, play, episode start): the same inputs give the same
arm in every process and on every replica, and nothing is drawn from a random state. The
assignment then holds for ``episode_days``; a held-out account keeps its scores and reasons,
but the recommender passes over that play (it offers the next one in line) until the episode
ends. The fallback play (nurture) is never held out: it is what is left when nothing else applies.

This module is pure: the stored assignments come in, the new ones go out in ``Assigner.new``
(:mod:`serving.store.plays` keeps them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from features.reason_catalog import LAST_RESORT, PLAY_BY_NAME

RECOMMEND, HOLD_OUT = "recommend", "hold_out"
ARMS = (RECOMMEND, HOLD_OUT)
#: Plays never held out: the fallback every account can get.
EXEMPT = frozenset({LAST_RESORT})


@dataclass(frozen=True)
class Assignment:
    """One account's arm for one play over one episode ``[episode_start, episode_end)``."""

    account_id: str
    play: str
    episode_start: dt.date
    episode_end: dt.date
    arm: str
    share: float
    seed: int

    @property
    def held_out(self) -> bool:
        return self.arm == HOLD_OUT

    def as_dict(self) -> dict:
        return {"account_id": self.account_id, "play": self.play, "episode_start": self.episode_start,
                "episode_end": self.episode_end, "arm": self.arm, "share": self.share, "seed": self.seed}


def unit(account_id: str, play: str, episode_start: dt.date, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, account, play, episode start): the same in every process."""
    key = f"{seed}|{account_id}|{play}|{episode_start.isoformat()}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64


def draw(account_id: str, play: str, episode_start: dt.date, share: float, seed: int, episode_days: int) -> Assignment:
    """The account's arm for an episode of ``play`` starting on ``episode_start`` (held out when the hash < share)."""
    arm = HOLD_OUT if unit(account_id, play, episode_start, seed) < share else RECOMMEND
    return Assignment(account_id, play, episode_start, episode_start + dt.timedelta(days=episode_days), arm,
                      float(share), int(seed))


def check_shares(shares: Mapping[str, float]) -> None:
    """Per-play shares name declared plays (settings ``play_holdout_shares``)."""
    unknown = sorted(set(shares) - set(PLAY_BY_NAME))
    if unknown:
        raise ValueError(f"play_holdout_shares: unknown play(s) {', '.join(unknown)}; plays are "
                         f"{', '.join(PLAY_BY_NAME)}")


@dataclass
class Assigner:
    """The assignments in force at one scoring run, drawing new ones as plays come up.

    ``current`` holds the stored assignments whose episode covers ``as_of`` (by account and play);
    ``draw_new`` False only reads them (a replica that must not draw, e.g. a read-only page).
    """

    as_of: dt.date
    default_share: float
    seed: int
    episode_days: int
    shares: Mapping[str, float] = field(default_factory=dict)
    current: dict[tuple[str, str], Assignment] = field(default_factory=dict)
    draw_new: bool = True
    new: list[Assignment] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_shares(self.shares)
        self._held: dict[str, set[str]] = {}
        for a in self.current.values():
            if a.held_out:
                self._held.setdefault(a.account_id, set()).add(a.play)

    @classmethod
    def for_run(cls, as_of: dt.date, settings, stored: Iterable[Assignment] = ()) -> Assigner:  # noqa: ANN001
        """An assigner with the settings' shares, seed and episode length, and the stored assignments covering ``as_of``."""
        current = {(a.account_id, a.play): a for a in stored if a.episode_start <= as_of < a.episode_end}
        return cls(as_of, settings.play_holdout_share, settings.play_holdout_seed, settings.play_episode_days,
                   dict(settings.play_holdout_shares), current)

    def share(self, play: str) -> float:
        return 0.0 if play in EXEMPT else float(self.shares.get(play, self.default_share))

    def held_out(self, account_id: str, play: str) -> bool:
        """True when ``account_id`` is in ``play``'s control group at this run (drawn now if the play is new to it)."""
        key = (account_id, play)
        found = self.current.get(key)
        if found is None:
            share = self.share(play)
            if share <= 0.0 or not self.draw_new:
                return False
            found = self.current[key] = draw(account_id, play, self.as_of, share, self.seed, self.episode_days)
            self.new.append(found)
            if found.held_out:
                self._held.setdefault(account_id, set()).add(play)
        return found.held_out

    def held_plays(self, account_id: str) -> tuple[str, ...]:
        """The plays whose control group ``account_id`` is in at this run (stored or drawn so far), by name."""
        return tuple(sorted(self._held.get(account_id, ())))
