"""US individual tax on one year of realized capital gains: federal, NIIT and a flat state rate.

Mechanics implemented:

- Schedule D netting: net short-term (line 7) and net long-term (line 15) including the
  carryovers coming in, then net across (line 16).
- IRC §1(j) ordinary rate schedules; IRC §1(h) 0/15/20 % rates on net capital gain, stacked on
  top of ordinary taxable income (Form 1040 Qualified Dividends and Capital Gain Tax Worksheet,
  including its cap at the regular tax on all taxable income).
- IRC §1211(b) capital-loss deduction (3,000; 1,500 married filing separately) and the §1212(b)
  carryover, short-term first (Schedule D instructions, Capital Loss Carryover Worksheet).
- IRC §1411 net investment income tax (NIIT).
- A flat state rate on the year's net capital gain, short- and long-term alike (as California
  taxes them); a net loss owes none and its ordinary offset is federal only.

Simplifications: a profile's ``ordinary_income`` is taxable income before capital items (all
deductions already taken); taxable income stands in for MAGI in the NIIT; no AMT, qualified
dividends, 25 %/28 % gain classes, phase-outs or state-specific loss rules. Bracket tables are
data (``data/tax_tables.yaml``), validated on load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from taxharvest.errors import TaxTableError

Filing = Literal["single", "mfj", "mfs", "hoh"]
FILINGS: tuple[str, ...] = get_args(Filing)
Indexing = Literal["fixed", "inflation"]


# --------------------------------------------------------------------------- tables (data)


def _ascending(values: tuple[float, ...]) -> tuple[float, ...]:
    if any(b <= a for a, b in zip(values[:-1], values[1:], strict=True)):
        raise ValueError(f"must be strictly ascending, got {list(values)}")
    return values


def _all_filings(mapping: dict[str, Any]) -> dict[str, Any]:
    missing = [f for f in FILINGS if f not in mapping]
    if missing:
        raise ValueError(
            f"missing filing status(es) {missing}; every one of {list(FILINGS)} is required"
        )
    return mapping


Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Amount = Annotated[float, Field(gt=0.0)]
BandTops = Annotated[tuple[Amount, ...], AfterValidator(_ascending)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateSchedule(_Frozen):
    """Marginal rates (ascending) and, per filing status, the top of every band but the last."""

    rates: Annotated[tuple[Rate, ...], Field(min_length=1), AfterValidator(_ascending)]
    thresholds: Annotated[dict[Filing, BandTops], AfterValidator(_all_filings)]

    @model_validator(mode="after")
    def _band_count(self) -> RateSchedule:
        for filing, tops in self.thresholds.items():
            if len(tops) != len(self.rates) - 1:
                raise ValueError(
                    f"thresholds.{filing}: {len(tops)} band tops for {len(self.rates)} rates "
                    f"(need {len(self.rates) - 1})"
                )
        return self


class YearTable(_Frozen):
    """One tax year's published schedules and the document they come from."""

    source: str = Field(min_length=1)
    ordinary: RateSchedule
    capital_gains: RateSchedule


class NiitTable(_Frozen):
    """IRC §1411: rate and (unindexed) MAGI thresholds."""

    rate: Rate
    thresholds: Annotated[dict[Filing, Amount], AfterValidator(_all_filings)]


@dataclass(frozen=True)
class Brackets:
    """A progressive schedule: ``rates[i]`` applies up to ``tops[i]``, the last rate above."""

    rates: tuple[float, ...]
    tops: tuple[float, ...]

    def tax(self, income: float) -> float:
        """Tax on ``income`` (cumulative over the bands; 0 for income <= 0)."""
        total, lower = 0.0, 0.0
        for rate, top in zip(self.rates, (*self.tops, math.inf), strict=True):
            if income <= lower:
                break
            total += rate * (min(income, top) - lower)
            lower = top
        return total


@dataclass(frozen=True)
class YearLaw:
    """Everything the computation needs for one (filing status, year, indexing rule)."""

    year: int
    base_year: int
    ordinary: Brackets
    capital_gains: Brackets
    niit_rate: float
    niit_threshold: float
    loss_limit: float


class TaxTables(_Frozen):
    """The validated contents of a tax table file."""

    niit: NiitTable
    capital_loss_limit: Annotated[dict[Filing, Amount], AfterValidator(_all_filings)]
    years: dict[int, YearTable] = Field(min_length=1)
    _cache: dict[tuple[str, int, str, float], YearLaw] = PrivateAttr(default_factory=dict)

    def base_year(self, year: int) -> int:
        """The table year used for ``year``: the latest table year <= ``year``, else the first."""
        earlier = [y for y in self.years if y <= year]
        return max(earlier) if earlier else min(self.years)

    def law(
        self, filing: Filing, year: int, indexing: Indexing = "fixed", inflation: float = 0.0
    ) -> YearLaw:
        """Schedules in force for ``year`` (cached).

        A year in the tables uses them as published. Otherwise the base year's thresholds are used
        unchanged (``"fixed"``) or scaled by ``(1 + inflation) ** (year - base_year)``
        (``"inflation"``, also deflating years before the tables), without the IRS's rounding down
        to a multiple of $25/$50 (IRC §1(f)(7)). NIIT thresholds and the capital-loss limit are
        statutory amounts and never indexed.
        """
        key = (filing, year, indexing, inflation if indexing == "inflation" else 0.0)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        base = self.base_year(year)
        factor = (1.0 + inflation) ** (year - base) if indexing == "inflation" else 1.0
        table = self.years[base]

        def brackets(schedule: RateSchedule) -> Brackets:
            return Brackets(schedule.rates, tuple(t * factor for t in schedule.thresholds[filing]))

        law = YearLaw(
            year=year,
            base_year=base,
            ordinary=brackets(table.ordinary),
            capital_gains=brackets(table.capital_gains),
            niit_rate=self.niit.rate,
            niit_threshold=self.niit.thresholds[filing],
            loss_limit=self.capital_loss_limit[filing],
        )
        self._cache[key] = law
        return law

    def describe(self, indexing: Indexing, inflation: float) -> str:
        """One sentence stating the tables used and the rule for years outside them."""
        first, last = min(self.years), max(self.years)
        sources = "; ".join(f"{y}: {self.years[y].source}" for y in sorted(self.years))
        if indexing == "fixed":
            rule = f"years outside {first}-{last} use the nearest table year's brackets unchanged"
        else:
            rule = (
                f"years outside {first}-{last} index the nearest table year's brackets at "
                f"{inflation:.2%} a year (compounded, unrounded)"
            )
        return (
            f"federal tables {first}-{last} ({sources}); {rule}; NIIT thresholds and the "
            "capital-loss limit are statutory and never indexed"
        )


_PACKAGED = "tax_tables.yaml"


def load_tables(path: str | Path | None = None) -> TaxTables:
    """Read and validate a tax table file (default: the packaged ``data/tax_tables.yaml``).

    Raises:
        TaxTableError: naming the file and every offending field.
    """
    if path is None:
        source: Any = resources.files("taxharvest.tax") / "data" / _PACKAGED
        name = f"taxharvest/tax/data/{_PACKAGED}"
    else:
        source, name = Path(path), str(path)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaxTableError(f"tax table {name} is not valid YAML: {exc}") from exc
    try:
        return TaxTables.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise TaxTableError(f"invalid tax table {name}: {details}") from None


@lru_cache(maxsize=1)
def default_tables() -> TaxTables:
    """The packaged tables, loaded once."""
    return load_tables()


# --------------------------------------------------------------------------- client profiles


class _ProfileModel(_Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class IncomeOverride(_ProfileModel):
    """One year's departures from a profile's usual figures (``None`` keeps the usual one)."""

    ordinary_income: float | None = Field(default=None, ge=0.0)
    outside_short_gain: float | None = None
    outside_long_gain: float | None = None


@dataclass(frozen=True)
class YearIncome:
    """A client's income outside the portfolio in one year."""

    ordinary_income: float
    outside_short_gain: float
    outside_long_gain: float


class TaxProfile(_ProfileModel):
    """A client's tax situation.

    Attributes:
        ordinary_income: taxable ordinary income (after deductions), before capital items.
        outside_short_gain, outside_long_gain: net realized gains outside the portfolio each year
            (negative = loss).
        state_rate: flat state rate on the net capital gain, short- and long-term alike.
        carryforward_short, carryforward_long: the client's own capital-loss carryforwards into
            the first year (IRC §1212(b), positive amounts), on the baseline and the
            with-portfolio side alike (:class:`TaxSavingsTracker`).
        indexing, inflation: the bracket rule for years outside the tables (see TaxTables.law).
        schedule: per-year overrides of income and outside gains (an income path).
    """

    name: str = Field(min_length=1)
    filing: Filing
    ordinary_income: float = Field(ge=0.0)
    outside_short_gain: float = 0.0
    outside_long_gain: float = 0.0
    state_rate: Rate = 0.0
    carryforward_short: float = Field(default=0.0, ge=0.0)
    carryforward_long: float = Field(default=0.0, ge=0.0)
    indexing: Indexing = "fixed"
    inflation: float = Field(default=0.025, gt=-1.0, lt=1.0)
    schedule: dict[int, IncomeOverride] = Field(default_factory=dict)

    @property
    def carryforward(self) -> tuple[float, float]:
        """``(short, long)`` carryforwards into the first year."""
        return self.carryforward_short, self.carryforward_long

    def for_year(self, year: int) -> YearIncome:
        """Income and outside gains in force in ``year``."""
        override = self.schedule.get(year, IncomeOverride())

        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        return YearIncome(
            ordinary_income=pick(override.ordinary_income, self.ordinary_income),
            outside_short_gain=pick(override.outside_short_gain, self.outside_short_gain),
            outside_long_gain=pick(override.outside_long_gain, self.outside_long_gain),
        )

    def describe(self, tables: TaxTables | None = None) -> str:
        """A statement of the profile and every modelling rule, for run outputs."""
        income = (
            f"{self.name}: {self.filing}, ordinary taxable income {self.ordinary_income:,.0f}, "
            f"outside short/long gains {self.outside_short_gain:,.0f}/{self.outside_long_gain:,.0f}"
            " a year"
        )
        if self.schedule:
            income += f" (overridden in {', '.join(map(str, sorted(self.schedule)))})"
        if any(self.carryforward):
            income += (
                f", loss carryforwards short/long {self.carryforward_short:,.0f}/"
                f"{self.carryforward_long:,.0f} at the start"
            )
        rules = (tables or default_tables()).describe(self.indexing, self.inflation)
        return (
            f"{income}; state {self.state_rate:.1%} flat on net gains (short and long alike); "
            f"{rules}; taxable income stands in for MAGI in the NIIT"
        )


PROFILES: Mapping[str, TaxProfile] = MappingProxyType(
    {
        p.name: p
        for p in (
            TaxProfile(name="single-60k", filing="single", ordinary_income=60_000),
            TaxProfile(
                name="mfj-250k", filing="mfj", ordinary_income=250_000, outside_short_gain=20_000
            ),
            TaxProfile(
                name="mfj-800k", filing="mfj", ordinary_income=800_000, outside_short_gain=100_000
            ),
            TaxProfile(
                name="mfj-800k-ca",
                filing="mfj",
                ordinary_income=800_000,
                outside_short_gain=100_000,
                state_rate=0.133,
            ),
        )
    }
)


def get_profile(profile: str | Path | TaxProfile) -> TaxProfile:
    """A preset by name, a profile file (a ``.yaml``/``.yml`` or other path:
    :func:`load_profile`), or the profile itself.

    Raises:
        ValueError: an unknown name, listing the presets.
        TaxTableError: a profile file that cannot be read or does not validate.
    """
    if isinstance(profile, TaxProfile):
        return profile
    text = str(profile)
    if text in PROFILES:
        return PROFILES[text]
    path = Path(text)
    if isinstance(profile, Path) or path.suffix.lower() in (".yaml", ".yml") \
            or "/" in text or path.is_file():
        return load_profile(path)
    raise ValueError(
        f"unknown tax profile {text!r}; valid names: {', '.join(PROFILES)}, or a YAML profile "
        "file (`taxharvest profile show NAME` prints one to start from)"
    )


# --------------------------------------------------------------------------- profile files

# The comment of each field in a profile file (``taxharvest profile show``), in file order.
PROFILE_NOTES: Mapping[str, str] = MappingProxyType(
    {
        "name": "shown in every output; default: the file name",
        "filing": "single | mfj (married filing jointly) | mfs | hoh",
        "ordinary_income": "taxable ordinary income after deductions, before capital items",
        "outside_short_gain": "net short-term gain realized outside the portfolio a year",
        "outside_long_gain": "net long-term gain outside the portfolio a year (negative: loss)",
        "state_rate": "flat state rate on net capital gains, short and long alike",
        "carryforward_short": "capital-loss carryforward the client brings into year one, short",
        "carryforward_long": "the same, long-term (both positive amounts)",
        "indexing": "brackets of years beyond the tax tables: fixed | inflation",
        "inflation": "yearly bracket indexing when indexing is inflation",
        "schedule": "per-year overrides of the three income figures (the income path)",
    }
)
_SCHEDULE_EXAMPLE = (
    "# schedule:",
    "#   2026: {ordinary_income: 400000}",
    "#   2027: {ordinary_income: 150000, outside_short_gain: 0, outside_long_gain: 50000}",
)


class _ProfileLoader(yaml.SafeLoader):
    """Safe YAML without implicit booleans: ``yes``/``on``/``true`` stay text, so a number field
    rejects them instead of reading 1."""


_ProfileLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _key_lines(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """The 1-based line of every mapping key under ``node``, by its path of keys (as text)."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            lines.update(_key_lines(value, path))
    return lines


def _error_text(error: dict) -> str:
    """A pydantic error as a short rule (``must be >= 0, got -5``)."""
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    bounds = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
              "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {ctx[key]:g}, got {given!r}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}, got {given!r}"
    if kind == "finite_number":
        return f"must be a finite number, got {given!r}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number, got {given!r}"
    if kind == "int_parsing":
        return f"must be a year, got {given!r}"
    if kind == "extra_forbidden":
        model = IncomeOverride if error["loc"][0] == "schedule" else TaxProfile
        return f"unknown field; valid fields: {', '.join(model.model_fields)}"
    if kind == "missing":
        return "required"
    if kind in ("dict_type", "model_type"):
        return "must be a mapping of fields"
    return str(error["msg"])


def load_profile(path: str | Path) -> TaxProfile:
    """Read and validate a profile file: a YAML mapping of :class:`TaxProfile` fields (what
    :func:`profile_yaml` writes). The profile is named by its ``name`` key, else the file stem.

    Raises:
        TaxTableError: one line naming the file, the line of the key where the file has it,
            and the field (``client.yaml, line 4, field 'ordinary_income': must be >= 0``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxTableError("profile file not found", path=path, field="profile") from None
    except OSError as err:
        raise TaxTableError(f"cannot read: {err.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise TaxTableError("not a UTF-8 text file", path=path) from None
    loader = _ProfileLoader(text)
    try:
        node = loader.get_single_node()
        raw = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise TaxTableError(f"not valid YAML: {err.problem or err.context}", path=path,
                            row=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as err:
        raise TaxTableError(f"not valid YAML: {err}", path=path) from None
    finally:
        loader.dispose()
    if not isinstance(raw, dict):
        raise TaxTableError("expected a mapping of profile fields (filing, ordinary_income, "
                            "...; `taxharvest profile show NAME` prints one)", path=path)
    try:
        return TaxProfile.model_validate({"name": path.stem, **raw})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(part) for part in error["loc"] if part != "[key]")
        lines = _key_lines(node)
        row = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        more = exc.error_count() - 1
        raise TaxTableError(_error_text(error) + (f" (and {more} more)" if more else ""),
                            path=path, row=row, field=".".join(loc) or None) from None


def _scalar(value: object) -> str:
    """A YAML scalar that reads back as ``value``: integral amounts without a decimal point,
    other numbers as ``repr`` (exact), plain text where YAML keeps it text, else quoted."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    text = str(value)
    if text and yaml.load(text, Loader=_ProfileLoader) == text and ":" not in text:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def profile_yaml(profile: str | Path | TaxProfile, header: str = "") -> str:
    """``profile`` as a profile file, a comment on every field: :func:`load_profile` of the text
    gives back an equal profile. ``header`` (comment lines) goes first."""
    profile = get_profile(profile)
    fields = profile.model_dump(exclude={"schedule"})
    width = max(len(f"{key}: {_scalar(value)}") for key, value in fields.items()) + 2
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"{key}: {_scalar(value)}".ljust(width) + f"# {PROFILE_NOTES[key]}"
              for key, value in fields.items()]
    lines.append(("schedule:" if profile.schedule else "schedule: {}").ljust(width)
                 + f"# {PROFILE_NOTES['schedule']}")
    for year, override in sorted(profile.schedule.items()):
        items = override.model_dump(exclude_none=True).items()
        lines.append(f"  {year}: {{{', '.join(f'{k}: {_scalar(v)}' for k, v in items)}}}")
    if not profile.schedule:
        lines += _SCHEDULE_EXAMPLE
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- one tax year


@dataclass(frozen=True)
class TaxYear:
    """One year's tax (dollars). Losses and carryovers are positive amounts.

    Attributes:
        net_short, net_long: Schedule D lines 7 and 15 (after carryovers in; negative = loss).
        net_capital_gain: the part taxed at the §1(h) rates (long-term gain left after netting).
        ordinary_offset: Schedule D line 21, the capital loss deducted from ordinary income.
        taxable_income: ordinary income plus capital gain included (or minus the offset).
        federal_ordinary: regular tax on taxable income less net capital gain.
        federal_capital_gains: the extra tax from the §1(h) schedule on net capital gain.
        carry_short_out, carry_long_out: carryovers to the next year.
    """

    year: int
    net_short: float
    net_long: float
    net_capital_gain: float
    ordinary_offset: float
    taxable_income: float
    federal_ordinary: float
    federal_capital_gains: float
    niit: float
    state: float
    total: float
    carry_short_out: float
    carry_long_out: float


def _carryover(
    net_short: float, net_long: float, deduction: float, ordinary_income: float
) -> tuple[float, float]:
    """Capital Loss Carryover Worksheet (Schedule D instructions), lines 1-13.

    ``deduction`` is line 21; only the part that actually reduced taxable income counts as used
    (lines 1-4), and it uses the short-term loss first.
    """
    used = min(deduction, max(0.0, ordinary_income))  # line 4 (line 1 = TI, line 3 = TI + line 2)
    short_loss, long_loss = max(0.0, -net_short), max(0.0, -net_long)  # lines 5, 9
    carry_short = max(0.0, short_loss - (max(0.0, net_long) + used))  # lines 6-8
    carry_long = max(0.0, long_loss - (max(0.0, net_short) + max(0.0, used - short_loss)))  # 10-13
    return carry_short, carry_long


def tax_for_year(
    profile: str | TaxProfile,
    year: int,
    short_gain: float = 0.0,
    long_gain: float = 0.0,
    carry_short: float = 0.0,
    carry_long: float = 0.0,
    *,
    tables: TaxTables | None = None,
) -> TaxYear:
    """Total tax for ``year`` on the profile's outside income and gains plus ``short_gain`` and
    ``long_gain`` (further net realized gains, e.g. the portfolio's; negative = loss), given the
    capital-loss carryovers coming in (``carry_short``, ``carry_long``, positive amounts).
    """
    if carry_short < 0 or carry_long < 0:
        raise ValueError(f"carryovers are positive amounts, got {carry_short}, {carry_long}")
    profile = get_profile(profile)
    law = (tables or default_tables()).law(
        profile.filing, year, profile.indexing, profile.inflation
    )
    income = profile.for_year(year)

    net_short = income.outside_short_gain + short_gain - carry_short  # Schedule D line 7
    net_long = income.outside_long_gain + long_gain - carry_long  # line 15
    net = net_short + net_long  # line 16
    if net >= 0:
        offset, carry_short_out, carry_long_out = 0.0, 0.0, 0.0
        net_capital_gain = max(0.0, min(net_long, net))  # QDCG worksheet line 3: min(15, 16)
        taxable = income.ordinary_income + net
    else:
        offset = min(law.loss_limit, -net)  # line 21, IRC §1211(b)
        carry_short_out, carry_long_out = _carryover(
            net_short, net_long, offset, income.ordinary_income
        )
        net_capital_gain = 0.0
        taxable = max(0.0, income.ordinary_income - offset)

    ordinary_part = taxable - net_capital_gain  # QDCG worksheet line 5
    federal_ordinary = law.ordinary.tax(ordinary_part)
    stacked = law.capital_gains.tax(taxable) - law.capital_gains.tax(ordinary_part)  # lines 6-22
    federal = min(federal_ordinary + stacked, law.ordinary.tax(taxable))  # lines 23-25
    # IRC §1411: net gain counts only when positive (Treas. Reg. §1.1411-4(d)); MAGI ~ taxable.
    niit = law.niit_rate * max(0.0, min(max(0.0, net), taxable - law.niit_threshold))
    state = profile.state_rate * max(0.0, net)  # DOMAIN: a flat rate on net gains
    return TaxYear(
        year=year,
        net_short=net_short,
        net_long=net_long,
        net_capital_gain=net_capital_gain,
        ordinary_offset=offset,
        taxable_income=taxable,
        federal_ordinary=federal_ordinary,
        federal_capital_gains=federal - federal_ordinary,
        niit=niit,
        state=state,
        total=federal + niit + state,
        carry_short_out=carry_short_out,
        carry_long_out=carry_long_out,
    )


# --------------------------------------------------------------------------- marginal rates


def _finite_difference(
    profile: str | TaxProfile,
    year: int,
    sign: float,
    short_gain: float,
    long_gain: float,
    carry_short: float,
    carry_long: float,
    step: float,
    tables: TaxTables | None,
) -> tuple[float, float]:
    def total(ds: float, dl: float) -> float:
        return tax_for_year(
            profile, year, short_gain + ds, long_gain + dl, carry_short, carry_long, tables=tables
        ).total

    base = total(0.0, 0.0)
    d = sign * step
    return sign * (total(d, 0.0) - base) / step, sign * (total(0.0, d) - base) / step


def marginal_rates(
    profile: str | TaxProfile,
    year: int,
    *,
    short_gain: float = 0.0,
    long_gain: float = 0.0,
    carry_short: float = 0.0,
    carry_long: float = 0.0,
    step: float = 1_000.0,
    tables: TaxTables | None = None,
) -> tuple[float, float]:
    """Tax saved this year per dollar of one more short-term / long-term realized loss.

    Finite difference of :func:`tax_for_year`: ``(tax(x) - tax(x - step)) / step`` at the point
    ``x`` given by the portfolio's realizations so far (default none) and carryovers in. The
    figure is this year's saving only: a loss that merely grows a carryforward is worth 0 now.
    A long-term loss first offsets short-term gains (Schedule D line 16), so with outside
    short-term gains, or with no gains at all (the 3,000 ordinary offset), it is worth the
    ordinary rate, not the long-term rate: e.g. 0.22 / 0.22 for ``single-60k`` in 2025.
    """
    return _finite_difference(
        profile, year, -1.0, short_gain, long_gain, carry_short, carry_long, step, tables
    )


def marginal_gain_rates(
    profile: str | TaxProfile,
    year: int,
    *,
    short_gain: float = 0.0,
    long_gain: float = 0.0,
    carry_short: float = 0.0,
    carry_long: float = 0.0,
    step: float = 1_000.0,
    tables: TaxTables | None = None,
) -> tuple[float, float]:
    """Tax cost this year per dollar of one more short-term / long-term realized gain.

    ``(tax(x + step) - tax(x)) / step``, the counterpart of :func:`marginal_rates` (the cost of
    realizing a gain, e.g. 0.22 / 0.15 for ``single-60k`` in 2025).
    """
    return _finite_difference(
        profile, year, 1.0, short_gain, long_gain, carry_short, carry_long, step, tables
    )


# --------------------------------------------------------------------------- tax savings


@dataclass(frozen=True)
class TaxSaving:
    """One year's saving: baseline tax (outside income and gains only) minus tax with the
    portfolio's realizations, each with its own carryover chain."""

    year: int
    saving: float
    baseline: TaxYear
    with_portfolio: TaxYear

    @property
    def carry_base(self) -> tuple[float, float]:
        """Baseline (short, long) carryovers to next year."""
        return self.baseline.carry_short_out, self.baseline.carry_long_out

    @property
    def carry_with(self) -> tuple[float, float]:
        """With-portfolio (short, long) carryovers to next year."""
        return self.with_portfolio.carry_short_out, self.with_portfolio.carry_long_out


def tax_saving(
    profile: str | TaxProfile,
    year: int,
    portfolio_short: float,
    portfolio_long: float,
    carry_base: tuple[float, float] = (0.0, 0.0),
    carry_with: tuple[float, float] = (0.0, 0.0),
    *,
    tables: TaxTables | None = None,
) -> TaxSaving:
    """Tax saving of ``year``: tax(outside only, ``carry_base`` in) minus tax(outside plus the
    portfolio's net realized gains, ``carry_with`` in). Positive = the portfolio lowered tax."""
    baseline = tax_for_year(profile, year, 0.0, 0.0, *carry_base, tables=tables)
    with_portfolio = tax_for_year(
        profile, year, portfolio_short, portfolio_long, *carry_with, tables=tables
    )
    return TaxSaving(year, baseline.total - with_portfolio.total, baseline, with_portfolio)


class TaxSavingsTracker:
    """Year-by-year tax savings, keeping the baseline and with-portfolio carryover chains.

    Both chains start from the client's own carryforwards (``profile.carryforward``), so the
    portfolio's losses are worth what they add to them: a client whose carryforward already
    offsets the outside gains saves less from a harvested loss.

    Attributes:
        profile: the client.
        carry_base, carry_with: (short, long) carryovers into the next year to settle.
        history: one :class:`TaxSaving` per settled year, in order.
    """

    def __init__(self, profile: str | TaxProfile, *, tables: TaxTables | None = None) -> None:
        self.profile = get_profile(profile)
        self.tables = tables
        self.carry_base: tuple[float, float] = self.profile.carryforward
        self.carry_with: tuple[float, float] = self.profile.carryforward
        self.history: list[TaxSaving] = []

    @property
    def total_saving(self) -> float:
        """Sum of the savings settled so far."""
        return sum(s.saving for s in self.history)

    def settle(self, year: int, portfolio_short: float, portfolio_long: float) -> float:
        """Settle ``year`` (consecutive years only, so no year's carryover is skipped) given the
        portfolio's net realized short- and long-term gains; returns that year's saving."""
        if self.history and year != self.history[-1].year + 1:
            raise ValueError(
                f"years must be settled in increasing consecutive order: got {year} after "
                f"{self.history[-1].year} (expected {self.history[-1].year + 1})"
            )
        result = tax_saving(
            self.profile,
            year,
            portfolio_short,
            portfolio_long,
            self.carry_base,
            self.carry_with,
            tables=self.tables,
        )
        self.carry_base, self.carry_with = result.carry_base, result.carry_with
        self.history.append(result)
        return result.saving
