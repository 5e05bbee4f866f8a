"""Rule-based harvesters: hold, a loss threshold on a calendar cadence, and its tuned preset.

The rules read only what the environment shows an agent: the observation's
``ASSET_FEATURES`` (the worst lot's unrealized return, the share of value in loss lots, the
worst lot's age, the active and benchmark weights) and ``info`` (``date``,
``portfolio_value``, ``action_mask``). They never ask to harvest a stock the mask rules out.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import yaml

from taxharvest.agents.base import Decision
from taxharvest.envs.direct_index import ASSET_FEATURES
from taxharvest.errors import InputError
from taxharvest.tax.law import TaxProfile

CADENCES = ("daily", "weekly", "monthly", "quarterly")
TUNED_PATH = Path(__file__).parent / "data" / "tuned.yaml"

_WORST = ASSET_FEATURES.index("worst_lot_return")
_LOSS_SHARE = ASSET_FEATURES.index("loss_value_share")
_AGE = ASSET_FEATURES.index("worst_lot_age")
_ACTIVE = ASSET_FEATURES.index("active_weight")
_BENCH = ASSET_FEATURES.index("benchmark_weight")


def period_of(date: str, cadence: str) -> tuple[int, ...]:
    """The calendar period of ``date`` (``YYYY-MM-DD``): its day, ISO week, month or quarter."""
    day = dt.date.fromisoformat(date[:10])
    if cadence == "daily":
        return day.toordinal(),
    if cadence == "weekly":
        return tuple(day.isocalendar())[:2]
    if cadence == "monthly":
        return day.year, day.month
    return day.year, (day.month - 1) // 3


class HoldPolicy:
    """``hold``: never harvests (the buy-and-hold direct index, still swapped back and rebalanced
    by the environment)."""

    name = "hold"

    def reset(self) -> None:
        """Nothing to forget."""

    def act(self, observation: dict[str, np.ndarray], info: dict) -> Decision:
        return Decision(np.zeros(observation["assets"].shape[0], np.int8))


class OptimizerPolicy:
    """``optimizer``: the decision program alone, as a tax-aware direct-indexing platform runs
    it: every harvestable stock fully preferred at every decision, the whole TE budget; the
    program chooses which lots to sell, how much, and the replacements."""

    name = "optimizer"

    def reset(self) -> None:
        """Nothing to forget."""

    def act(self, observation: dict[str, np.ndarray], info: dict) -> Decision:
        return Decision(np.asarray(info["action_mask"], np.int8))


class ThresholdPolicy:
    """``threshold:X``: harvest every stock whose worst lot is down at least ``X``.

    Acts on the first decision of each calendar period of ``cadence`` (judged from
    ``info["date"]``, so it keeps its own calendar whatever the environment's step is) and
    does nothing on the period's other decisions. The environment sells all loss lots of a
    harvested stock.

    Args:
        threshold: loss on the worst lot, as a positive fraction (0.10 = down 10% or more);
            0 harvests every loss.
        cadence: ``daily``, ``weekly``, ``monthly`` or ``quarterly``.
    """

    def __init__(self, threshold: float = 0.10, cadence: str = "weekly") -> None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        if cadence not in CADENCES:
            raise ValueError(f"cadence must be one of {', '.join(CADENCES)}, got {cadence!r}")
        self.threshold = float(threshold)
        self.cadence = cadence
        self.name = f"threshold:{threshold:g}" + ("" if cadence == "weekly" else f"@{cadence}")
        self._period: tuple[int, ...] | None = None

    def reset(self) -> None:
        self._period = None

    def act(self, observation: dict[str, np.ndarray], info: dict) -> Decision:
        assets = observation["assets"]
        n = assets.shape[0]
        action = np.zeros(n, np.int8)
        period = period_of(info["date"], self.cadence)
        if period == self._period:
            return Decision(action)
        self._period = period
        worst = assets[:, _WORST]
        chosen = np.flatnonzero(np.asarray(info["action_mask"], bool) & (worst <= -self.threshold))
        action[chosen] = 1
        position = (assets[:, _ACTIVE] + assets[:, _BENCH]) / n * info["portfolio_value"]
        reasons = {
            int(i): (f"worst lot {worst[i]:.1%} <= {0.0 - self.threshold:.1%} threshold "
                     f"(${assets[i, _LOSS_SHARE] * position[i]:,.0f} in loss lots, "
                     f"worst {assets[i, _AGE]:.1f}y old)")
            for i in chosen
        }
        return Decision(action, reasons)


class MonthlyAllPolicy(ThresholdPolicy):
    """``monthly-all``: every loss, once a month (Chaudhuri, Burnham & Lo, FAJ 2020)."""

    def __init__(self) -> None:
        super().__init__(0.0, "monthly")
        self.name = "monthly-all"


def read_tuned(path: str | Path = TUNED_PATH) -> dict:
    """The contents of a tuned file (``{}`` when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", path=path) from None
    except yaml.YAMLError as err:
        raise InputError(f"not valid YAML: {err}".replace("\n", " "), path=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping with a 'profiles' key", path=path)
    return data


def tuned_entry(profile: str | TaxProfile, path: str | Path = TUNED_PATH) -> dict:
    """The tuned threshold and cadence of ``profile`` (by its name) in ``path``."""
    name = profile.name if isinstance(profile, TaxProfile) else str(profile)
    entries = read_tuned(path).get("profiles") or {}
    if name not in entries:
        raise InputError(
            f"no tuned entry for profile {name!r} (tuned: {', '.join(entries) or 'none'}); "
            f"run `taxharvest tune --profile {name}`", path=path)
    return entries[name]


class TunedPolicy(ThresholdPolicy):
    """``tuned``: the threshold and cadence chosen for ``profile`` by
    :func:`~taxharvest.workflows.tune.tune` (named ``tuned[threshold:X@cadence]``).

    Args:
        profile: a preset name or profile; its name keys ``tuned.yaml``.
        path: the tuned file (default: the packaged ``taxharvest/agents/data/tuned.yaml``).
    """

    def __init__(self, profile: str | TaxProfile, path: str | Path = TUNED_PATH) -> None:
        entry = tuned_entry(profile, path)
        super().__init__(float(entry["threshold"]), str(entry["cadence"]))
        self.name = f"tuned[{self.name}]"
