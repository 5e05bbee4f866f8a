"""The one market builder: warm-up, windows and episodes that run to the end of the data."""

from __future__ import annotations

import pytest

from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.workflows.markets import (
    decision_row,
    decision_window,
    decisions_from,
    historical_window,
    market_from_options,
    window,
    years_to_end,
)


def test_the_synthetic_market_holds_the_warm_up_and_the_episode(market):
    assert market.n_days >= WARMUP_DAYS + 252
    assert window(market, None, None)[1] == str(market.dates[WARMUP_DAYS])


def test_an_episode_of_years_to_end_runs_to_the_last_day(market):
    cut, start = window(market, str(market.dates[200]), None)
    env = DirectIndexEnv(market=cut, profile="mfj-800k", random_start=False,
                         episode_years=years_to_end(cut), guardrail=False)
    env.reset(seed=0, options={"start": start})
    assert env.end == cut.n_days - 1
    assert cut.dates[0] == market.dates[200 - WARMUP_DAYS]


def test_decision_window_ends_on_the_decision_day(market):
    cut, day = decision_window(market, str(market.dates[150]))
    assert day == str(cut.dates[-1]) == str(market.dates[150]) and cut.n_days == WARMUP_DAYS + 1


@pytest.mark.parametrize(("args", "field"), [
    ((None, None, "synthetic:seed=x", None, None), "market"),
    ((None, None, "real", None, None), "market"),
])
def test_bad_market_options_name_the_option(args, field):
    with pytest.raises(InputError) as err:
        market_from_options(*args)
    assert err.value.field == field


@pytest.mark.parametrize("start", [0, 1, 5, WARMUP_DAYS - 1, WARMUP_DAYS, WARMUP_DAYS + 1, 200])
def test_the_warm_up_rule_is_the_environments(market, start):
    env = DirectIndexEnv(market=market, profile="mfj-800k", random_start=False,
                         episode_years=years_to_end(market), guardrail=False)
    env.reset(seed=0, options={"start": str(market.dates[start])})
    assert env.decisions_from == decision_row(start)


def test_a_start_on_the_first_date_holds_until_the_warm_up_completes(market):
    cut, start = window(market, str(market.dates[0]), None)
    assert start == str(market.dates[0]) and cut.n_days == market.n_days
    assert decisions_from(cut, start) == str(market.dates[WARMUP_DAYS - 1])
    late = str(market.dates[WARMUP_DAYS + 10])
    assert decisions_from(*window(market, late, None)) == late


@pytest.mark.parametrize(("call", "field"), [
    (lambda m: window(m, str(m.dates[0]), str(m.dates[20])), "end"),
    (lambda m: window(m, str(m.dates[3]), str(m.dates[WARMUP_DAYS])), "end"),
    (lambda m: decision_window(m, str(m.dates[5])), "date"),
    (lambda m: decision_window(m, str(m.dates[0])), "date"),
    (lambda m: window(m.slice(m.dates[0], m.dates[60]), None, None), "start"),
])
def test_a_window_without_a_decision_is_refused_saying_from_when(market, call, field):
    with pytest.raises(InputError) as err:
        call(market)
    assert err.value.field == field and "warm" in str(err.value)
    assert "\n" not in str(err.value)


def test_decisions_from_names_the_first_possible_date(market):
    with pytest.raises(InputError, match=f"decisions are possible from {market.dates[WARMUP_DAYS - 1]}"):
        window(market, str(market.dates[0]), str(market.dates[30]))
    with pytest.raises(InputError, match=f"decisions are possible from {market.dates[WARMUP_DAYS]}"):
        decision_window(market, str(market.dates[10]))
    assert decision_window(market, str(market.dates[WARMUP_DAYS]))[1] == str(market.dates[WARMUP_DAYS])
    with pytest.raises(ValueError, match="warms up"):
        historical_window(market, str(market.dates[2]), str(market.dates[40]))
    cut, first = historical_window(market, str(market.dates[0]), str(market.dates[200]))
    assert first == str(market.dates[0]) and cut.n_days == 201
