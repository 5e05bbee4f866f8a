"""The one market builder: warm-up, windows and episodes that run to the end of the data."""

from __future__ import annotations

import pytest

from taxharvest.envs.direct_index import DirectIndexEnv
from taxharvest.errors import InputError
from taxharvest.market.risk import WARMUP_DAYS
from taxharvest.workflows.markets import (
    decision_window,
    first_decision,
    market_from_options,
    window,
    years_to_end,
)


def test_the_synthetic_market_holds_the_warm_up_and_the_episode(market):
    assert market.n_days >= WARMUP_DAYS + 252
    assert first_decision(market) == window(market, None, None)[1] == str(market.dates[WARMUP_DAYS])


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
