"""Paired differences between policies on the same paths: can a comparison tell a winner
from noise?

The spread of tax alpha across paths (one market's crash against another's calm) is far
larger than the differences between policies, so two policies are compared path by path:
on each path, the policy's measure minus the baseline's on the *same* path; then the mean
of those differences, its 95% confidence interval (Student t over the paths, ``n - 1``
degrees of freedom), the number of paths and how many the policy wins (a strictly larger
value than the baseline's). One path gives a difference but no interval (NaN, printed
``n/a``): a zero-width interval would claim a certainty one draw cannot give.

:func:`paired_difference` is the one computation; :func:`paired_table` applies it per
profile and policy against the profile's baseline (:func:`choose_baseline`), for
``taxharvest evaluate`` (workflow, terminal, JSON, Markdown) and its HTML report alike.

The real-data paths (label :data:`REAL`, and ``real+1d``, ... for the same history decided
from later starts: :func:`is_real`) are *not* pooled into the interval: they are not
independent draws of the synthetic process, and one history of real prices weighed as more
seeds would mix two different questions. Their mean difference is reported beside the
interval (``real``).

Rows are the evaluation rows of :func:`~taxharvest.workflows.evaluate.run_eval_task`
(dicts with ``profile``, ``market`` (the path label), ``policy`` and the measures), as
read back from the JSON too: this module imports nothing of the backtest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from taxharvest.errors import InputError

REAL = "real"  # the label of the real-data path (``real+Kd``: started K trading days later)
LEVEL = 0.95  # the confidence of the interval
BASELINES = ("optimizer", "tuned", "monthly-all")  # the baseline policies, when evaluated
PAIRED_MEASURES = ("tax_alpha", "after_tax_excess_liquidated")  # tax alpha can flatter a
# policy that loses pre-tax: the liquidated after-tax excess is paired beside it


@dataclass(frozen=True)
class PairedDifference:
    """A policy minus its baseline on the same paths.

    Attributes:
        mean: the mean difference over the paths (NaN without paths).
        low, high: its confidence interval (NaN with fewer than two paths).
        n: the number of paired paths.
        wins: the paths where the policy's value is strictly larger than the baseline's.
    """

    mean: float
    low: float
    high: float
    n: int
    wins: int

    @property
    def share(self) -> float:
        """The share of the paths the policy wins (NaN without paths)."""
        return self.wins / self.n if self.n else math.nan

    @property
    def significant(self) -> bool:
        """The interval excludes zero (False where there is no interval)."""
        return bool(np.isfinite(self.low) and (self.low > 0 or self.high < 0))

    def to_dict(self) -> dict:
        return {**asdict(self), "share": self.share}


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t  # scipy comes with cvxpy; imported here, where it is used

    return float(t.ppf(p, df))


def differences(rows: Iterable[dict], baseline: str, policy: str,
                measure: str = "tax_alpha") -> dict[str, float]:
    """Path label -> the policy's ``measure`` minus the baseline's on that path.

    Rows pair by their path label (``market``), whatever their order. Rows of more than one
    profile, a path twice for one policy, or a path one of the two policies lacks raise
    :class:`~taxharvest.errors.InputError`: a difference on unpaired paths would be the
    unpaired comparison this module exists to avoid.
    """
    values: dict[str, dict[str, float]] = {baseline: {}, policy: {}}
    rows = [row for row in rows if row["policy"] in values]
    profiles = {row.get("profile") for row in rows}
    if len(profiles) > 1:
        raise InputError(f"rows of several profiles ({', '.join(sorted(map(str, profiles)))}) "
                         "cannot pair; give one profile's rows", field="rows")
    for row in rows:
        mine = values[row["policy"]]
        if row["market"] in mine:
            raise InputError(f"path {row['market']!r} appears twice for policy "
                             f"{row['policy']!r}", field="rows")
        mine[row["market"]] = float(row[measure]) if row[measure] is not None else math.nan
    for one, other in ((policy, baseline), (baseline, policy)):
        missing = sorted(set(values[other]) - set(values[one]))
        if missing:
            raise InputError(f"policy {one!r} has no row for path(s) {', '.join(missing)} "
                             f"that {other!r} ran; policies pair on the same paths",
                             field="rows")
    base = values[baseline]
    return {label: value - base[label] for label, value in values[policy].items()}


def summarize_differences(diffs: Sequence[float], level: float = LEVEL) -> PairedDifference:
    """Mean, Student-t interval at ``level``, count and wins of paired differences."""
    d = np.asarray(diffs, float)
    n = len(d)
    if n == 0:
        return PairedDifference(math.nan, math.nan, math.nan, 0, 0)
    mean = float(d.mean())
    if n < 2 or not np.isfinite(d).all():
        low = high = math.nan
    else:
        half = t_quantile(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return PairedDifference(mean, low, high, n, int((d > 0).sum()))


def paired_difference(rows: Iterable[dict], baseline: str, policy: str,
                      measure: str = "tax_alpha", *, level: float = LEVEL) -> PairedDifference:
    """``policy`` minus ``baseline`` on each path of ``rows`` (one profile's rows: the
    paths to pool; leave the real path out, see the module docstring), summarized: the mean,
    its ``level`` Student-t interval over the paths, the number of paths and the wins."""
    return summarize_differences(list(differences(rows, baseline, policy, measure).values()),
                                 level)


def is_ppo(policy: str) -> bool:
    return policy == "ppo" or policy.startswith("ppo:")


def is_real(label: str) -> bool:
    """Whether a path label names the real data (``real``, or ``real+Kd``, its start K
    trading days later)."""
    return label == REAL or label.startswith(REAL + "+")


def choose_baseline(rows: Sequence[dict], baseline: str | None = None) -> str:
    """The baseline of one profile's rows: ``baseline`` when given (it must be evaluated),
    else the best (highest mean tax alpha over the synthetic paths, or on the real paths
    without them) of the :data:`BASELINES` evaluated, else of the policies that are not
    PPO, else of all."""
    return _choose(rows, baseline)[0]


def _choose(rows: Sequence[dict], baseline: str | None) -> tuple[str, str]:
    """The baseline and how it was chosen."""
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    if baseline is not None:
        if baseline not in policies:
            raise InputError(f"{baseline!r} is not among the policies evaluated "
                             f"({', '.join(policies)})", field="baseline")
        return baseline, "given (--baseline)"
    if not policies:
        raise InputError("no rows to choose a baseline from", field="rows")
    rules = [p for p in policies if p in BASELINES]
    others = [p for p in policies if not is_ppo(p)]
    candidates, why = ((rules, "the best baseline evaluated (" + ", ".join(rules) + ")")
                       if rules else (others, "the best non-PPO policy") if others
                       else (policies, "the best policy"))
    synthetic = [r for r in rows if not is_real(r["market"])]
    pool = synthetic or list(rows)

    def mean_alpha(policy: str) -> float:
        values = [float(r["tax_alpha"]) for r in pool if r["policy"] == policy
                  and r["tax_alpha"] is not None]
        return float(np.mean(values)) if values else -math.inf

    return max(candidates, key=mean_alpha), why  # the first of equals


def paired_table(rows: Sequence[dict], baseline: str | None = None, *,
                 measures: Sequence[str] = PAIRED_MEASURES,
                 level: float = LEVEL) -> list[dict]:
    """Per profile (in row order) and policy other than the profile's baseline: the paired
    difference of each of ``measures`` over the synthetic paths (``mean``, ``low``,
    ``high``, ``n``, ``wins``, ``share``) and its mean over the real paths (``real``; NaN
    without one).

    Each entry: ``profile``, ``baseline``, ``policy``, ``name`` (the policy's display
    name), ``baseline_name``, ``baseline_by`` (how it was chosen), ``level``, and one dict
    per measure key. A profile with one policy has no entry.
    """
    out = []
    for profile in dict.fromkeys(r["profile"] for r in rows):
        mine = [r for r in rows if r["profile"] == profile]
        base, why = _choose(mine, baseline)
        names = {r["policy"]: r.get("name", r["policy"]) for r in mine}
        synthetic = [r for r in mine if not is_real(r["market"])]
        real = [r for r in mine if is_real(r["market"])]
        for policy in names:
            if policy == base:
                continue
            entry = {"profile": profile, "baseline": base, "baseline_name": names[base],
                     "baseline_by": why, "policy": policy, "name": names[policy],
                     "level": level}
            for key in measures:
                diff = paired_difference(synthetic, base, policy, key, level=level)
                on_real = list(differences(real, base, policy, key).values())
                entry[key] = {**diff.to_dict(),
                              "real": float(np.mean(on_real)) if on_real else math.nan}
            out.append(entry)
    return out


def signed(value: float | None) -> str:
    """A difference as people read it: ``+0.12%`` (``n/a`` for a missing or NaN one)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:+.2%}"
    return "+0.00%" if text in ("-0.00%", "+0.00%") else text


def interval(cell: dict) -> str:
    """A measure's interval of a :func:`paired_table` entry: ``[-0.05%, +0.29%]``, or
    ``n/a`` (fewer than two paths)."""
    low, high = cell.get("low"), cell.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{signed(low)}, {signed(high)}]"


def wins(cell: dict) -> str:
    """``3/4`` paths won (``–`` without paths)."""
    return f"{cell['wins']}/{cell['n']}" if cell.get("n") else "–"
