"""Lot relief, holding periods and the wash-sale rule, case by case."""

from __future__ import annotations

import pytest

from taxharvest import errors
from taxharvest.errors import InputError
from taxharvest.tax import kernel
from taxharvest.tax.calendar import is_long_term, to_day
from taxharvest.tax.ledger import Ledger, LedgerError
from taxharvest.tax.reporting import form_8949, sales_records, schedule_d, totals


def book(*tickers: str, **kwargs) -> Ledger:
    return Ledger(tickers or ("XYZ",), **kwargs)


def only_lot(ledger: Ledger) -> dict:
    (lot,) = ledger.open_lots()
    return lot


def test_pub_550_worked_example():
    """IRS Pub. 550: 100 sh for $1,000, sold for $750, 100 sh bought for $800 within 30 days."""
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2024-01-02")
    ledger.sell("XYZ", 100, 7.5, "2024-06-03")
    ledger.buy("XYZ", 100, 8.0, "2024-06-20")
    (sale,) = sales_records(ledger)
    assert sale["wash_sale_disallowed"] == pytest.approx(250.0)
    assert sale["gain"] == pytest.approx(0.0)
    lot = only_lot(ledger)
    assert lot["cost_basis"] == pytest.approx(1050.0)
    # holding period of the old shares (2024-01-02 .. 2024-06-03, 153 days) carried over
    assert to_day(lot["date_acquired"]) == to_day("2024-06-20") - 153


def test_fewer_replacement_shares_disallow_only_their_fraction():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2024-01-02")
    ledger.sell("XYZ", 100, 8.0, "2024-03-01")
    ledger.buy("XYZ", 60, 8.0, "2024-03-10")
    (sale,) = sales_records(ledger)
    assert sale["wash_sale_disallowed"] == pytest.approx(120.0)
    assert sale["gain"] == pytest.approx(-80.0)
    assert only_lot(ledger)["cost_basis"] == pytest.approx(60 * 8.0 + 120.0)


def test_larger_replacement_lot_is_split():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2024-01-02")
    ledger.sell("XYZ", 100, 8.0, "2024-03-01")
    ledger.buy("XYZ", 150, 8.0, "2024-03-10")
    lots = sorted(ledger.open_lots(), key=lambda lot: lot["shares"])
    assert [lot["shares"] for lot in lots] == [50.0, 100.0]
    assert lots[0]["cost_basis"] == pytest.approx(400.0)
    assert lots[0]["date_acquired"] == "2024-03-10"
    assert lots[1]["cost_basis"] == pytest.approx(800.0 + 200.0)
    assert lots[1]["date_acquired"] < "2024-03-10"


@pytest.mark.parametrize(("days_before", "washed"), [(30, True), (31, False)])
def test_purchase_before_the_sale_in_another_lot(days_before, washed):
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2023-01-03")
    sale_day = to_day("2024-03-01")
    ledger.buy("XYZ", 100, 9.0, sale_day - days_before)
    ledger.sell("XYZ", 100, 8.0, sale_day)  # FIFO: the 2023 lot
    (sale,) = sales_records(ledger)
    assert sale["wash_sale_disallowed"] == pytest.approx(200.0 if washed else 0.0)


@pytest.mark.parametrize(("days_after", "washed"), [(30, True), (31, False)])
def test_purchase_after_the_sale(days_after, washed):
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2024-01-02")
    sale_day = to_day("2024-03-01")
    ledger.sell("XYZ", 100, 8.0, sale_day)
    ledger.buy("XYZ", 100, 8.5, sale_day + days_after)
    (sale,) = sales_records(ledger)
    assert sale["wash_sale_disallowed"] == pytest.approx(200.0 if washed else 0.0)


def test_rest_of_the_same_lot_is_not_a_replacement():
    ledger = book()
    ledger.buy("XYZ", 200, 10.0, "2024-01-02")
    ledger.sell("XYZ", 100, 8.0, "2024-01-20")
    (sale,) = sales_records(ledger)
    assert sale["wash_sale_disallowed"] == 0.0
    assert only_lot(ledger)["cost_basis"] == pytest.approx(1000.0)


def test_shares_bought_and_already_sold_are_not_replacements():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2023-01-03")
    ledger.buy("XYZ", 50, 9.0, "2024-02-15", lot_id="B")
    ledger.sell("XYZ", 50, 9.5, "2024-02-20", lot_id="B")
    ledger.sell("XYZ", 100, 8.0, "2024-03-01")
    assert [s["wash_sale_disallowed"] for s in sales_records(ledger)] == [0.0, 0.0]


def test_same_lot_sold_in_one_order_is_not_a_replacement_for_itself():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2023-01-03")
    ledger.buy("XYZ", 100, 9.0, "2024-02-20")
    ledger.sell("XYZ", 200, 8.0, "2024-03-01")  # both lots leave in the same order
    assert [s["wash_sale_disallowed"] for s in sales_records(ledger)] == [0.0, 0.0]
    assert totals(ledger)["short_term_gain"] == pytest.approx(-100.0)
    assert totals(ledger)["long_term_gain"] == pytest.approx(-200.0)


def test_unsold_rest_of_a_lot_relieved_in_the_same_order_replaces_the_other_lots_loss():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2023-01-03")
    ledger.buy("XYZ", 100, 9.0, "2024-02-20")
    ledger.sell("XYZ", 150, 8.0, "2024-03-01")  # FIFO: all of the 2023 lot, 50 of the other
    old_lot, part = sales_records(ledger)
    # the 50 shares still held replace 50 of the old lot's 100 (loss 2 each), not their own part
    assert old_lot["wash_sale_disallowed"] == pytest.approx(100.0)
    assert part["wash_sale_disallowed"] == 0.0
    lot = only_lot(ledger)
    assert lot["shares"] == 50 and lot["cost_basis"] == pytest.approx(450.0 + 100.0)
    assert lot["date_acquired"] == "2022-12-24"  # 2024-02-20 less the 423 days held


def test_sale_at_exactly_the_purchase_price_is_no_loss():
    """Part of a 45-share lot sold at its price leaves a float remainder, not a loss."""
    ledger = book("X")
    ledger.buy("X", 45, 50.22, "2024-01-02")
    ledger.sell("X", 3, 50.22, "2024-01-10")
    ledger.sell("X", 42, 40.0, "2024-01-11")
    ledger.buy("X", 3, 45.0, "2024-01-20")
    at_cost, loss = sales_records(ledger)
    assert at_cost["wash_sale_disallowed"] == 0.0
    assert loss["wash_sale_disallowed"] == pytest.approx(30.66)
    assert ledger.realized(2024) == (pytest.approx(-398.58), 0.0)
    lot = only_lot(ledger)
    assert lot["date_acquired"] == "2024-01-11" and lot["cost_basis"] == pytest.approx(165.66)


@pytest.mark.parametrize(("value", "basis", "loss"), [
    (150.66, 45 * 50.22 * 3 / 45, False),  # the float remainder of a partial lot
    (100.0, 100.0, False),
    (100.0, 100.01, True),
    (1e-3, 2e-3, True),
    (0.0, 0.0, False),
])
def test_is_loss_ignores_rounding_only(value, basis, loss):
    assert kernel.is_loss(value, basis) is loss


def test_same_day_order_matters_and_loss_never_reduces_other_blocks_gain():
    ledger = book()
    ledger.buy("XYZ", 100, 5.0, "2022-01-03")  # gain lot
    ledger.buy("XYZ", 100, 12.0, "2023-01-03")  # loss lot
    ledger.buy("XYZ", 100, 10.0, "2024-03-01")  # replacement, bought before the sale
    ledger.sell("XYZ", 200, 10.0, "2024-03-01")  # FIFO: gain lot and loss lot
    gain_row, loss_row = sales_records(ledger)
    assert gain_row["gain"] == pytest.approx(500.0)
    assert gain_row["wash_sale_disallowed"] == 0.0
    assert loss_row["wash_sale_disallowed"] == pytest.approx(200.0)
    # the replacement sold later the same day: its adjusted basis reduces that sale's gain
    ledger.sell("XYZ", 100, 11.0, "2024-03-01")
    assert sales_records(ledger)[-1]["gain"] == pytest.approx(100 * 11.0 - 1200.0)


def test_sell_then_buy_the_same_day_is_a_wash():
    ledger = book()
    ledger.buy("XYZ", 10, 10.0, "2024-01-02")
    ledger.sell("XYZ", 10, 9.0, "2024-05-01")
    ledger.buy("XYZ", 10, 9.0, "2024-05-01")
    assert sales_records(ledger)[0]["wash_sale_disallowed"] == pytest.approx(10.0)


def test_losses_match_replacements_in_chronological_order():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2023-01-03", lot_id="A")
    ledger.buy("XYZ", 100, 20.0, "2023-01-04", lot_id="B")
    ledger.sell("XYZ", 100, 8.0, "2024-03-01", lot_id="A")  # loss 2/share
    ledger.sell("XYZ", 100, 8.0, "2024-03-05", lot_id="B")  # loss 12/share
    ledger.buy("XYZ", 100, 8.0, "2024-03-20")
    first, second = sales_records(ledger)
    assert first["wash_sale_disallowed"] == pytest.approx(200.0)
    assert second["wash_sale_disallowed"] == 0.0


def test_replacement_absorbs_at_most_one_loss():
    ledger = book()
    ledger.buy("XYZ", 200, 10.0, "2023-01-03")
    ledger.buy("XYZ", 100, 9.0, "2024-02-25")
    ledger.sell("XYZ", 100, 8.0, "2024-03-01")
    ledger.sell("XYZ", 100, 8.0, "2024-03-02")
    first, second = sales_records(ledger)
    assert first["wash_sale_disallowed"] == pytest.approx(200.0)
    assert second["wash_sale_disallowed"] == 0.0


def test_cascade_carries_basis_and_holding_period_twice():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2024-01-02")
    ledger.sell("XYZ", 100, 8.0, "2024-03-01")  # loss 200
    ledger.buy("XYZ", 100, 8.0, "2024-03-15")  # basis 1000, holding period carried
    ledger.sell("XYZ", 100, 7.0, "2024-04-15")  # loss 300
    ledger.buy("XYZ", 100, 7.0, "2024-04-20")
    first, second = sales_records(ledger)
    assert first["wash_sale_disallowed"] == pytest.approx(200.0)
    assert second["cost_basis"] == pytest.approx(1000.0)
    assert second["wash_sale_disallowed"] == pytest.approx(300.0)
    lot = only_lot(ledger)
    assert lot["cost_basis"] == pytest.approx(1000.0)
    held = (to_day("2024-03-01") - to_day("2024-01-02")) + (to_day("2024-04-15") - to_day("2024-03-15"))
    assert to_day(lot["date_acquired"]) == to_day("2024-04-20") - held


def test_equivalence_map_makes_share_classes_identical():
    plain = book("GOOG", "GOOGL")
    linked = book("GOOG", "GOOGL", equivalents=[("GOOG", "GOOGL")])
    for ledger in (plain, linked):
        ledger.buy("GOOG", 10, 150.0, "2024-01-02")
        ledger.sell("GOOG", 10, 140.0, "2024-04-01")
        ledger.buy("GOOGL", 10, 141.0, "2024-04-05")
    assert sales_records(plain)[0]["wash_sale_disallowed"] == 0.0
    assert sales_records(linked)[0]["wash_sale_disallowed"] == pytest.approx(100.0)


def test_december_loss_washed_in_january_changes_the_earlier_year():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2024-06-03")
    ledger.sell("XYZ", 100, 8.0, "2024-12-20")
    assert ledger.realized(2024) == (pytest.approx(-200.0), 0.0)
    ledger.buy("XYZ", 100, 8.0, "2025-01-10")
    assert ledger.realized(2024) == (pytest.approx(0.0), 0.0)
    assert totals(ledger)["by_year"]["2024"]["wash_sale_disallowed"] == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("acquired", "sold", "long"),
    [
        ("2023-03-15", "2024-03-15", False),
        ("2023-03-15", "2024-03-16", True),
        ("2024-02-29", "2025-02-28", False),
        ("2024-02-29", "2025-03-01", True),
        ("2023-12-31", "2024-12-31", False),
        # bought on a month's last day: the year ends on that month's last day a year on
        ("2023-02-28", "2024-02-29", False),
        ("2023-02-28", "2024-03-01", True),
    ],
)
def test_more_than_one_year_is_long_term(acquired, sold, long):
    assert bool(is_long_term(to_day(acquired), to_day(sold))) is long
    ledger = book()
    ledger.buy("XYZ", 1, 10.0, acquired)
    ledger.sell("XYZ", 1, 11.0, sold)
    assert sales_records(ledger)[0]["term"] == ("long" if long else "short")


def test_relief_methods():
    for relief, expected_basis in (("fifo", 10.0), ("hifo", 30.0)):
        ledger = book(relief=relief)
        ledger.buy("XYZ", 10, 10.0, "2023-01-03")
        ledger.buy("XYZ", 10, 30.0, "2023-02-01")
        ledger.buy("XYZ", 10, 20.0, "2023-03-01")
        ledger.sell("XYZ", 15, 25.0, "2024-06-03")
        first = sales_records(ledger)[0]
        assert first["cost_basis"] / first["shares"] == pytest.approx(expected_basis)
        assert sum(s["shares"] for s in sales_records(ledger)) == pytest.approx(15)


@pytest.mark.parametrize("relief", ["fifo", "hifo"])
def test_relief_order_over_many_lots_in_reused_slots(relief):
    """Sixty lots (prices repeating, slots freed by lot sales and reused) relieve in order:
    FIFO by purchase, HIFO by basis per share and then purchase, as a stable sort gives."""
    ledger = book(relief=relief)
    prices = [10.0 + (7 * i) % 13 for i in range(60)]  # each price repeats four or five times
    day = to_day("2020-01-02")
    bought = []  # (purchase order, price) of the lots still held
    for i, price in enumerate(prices):
        ledger.buy("XYZ", 1, price, day + i, lot_id=f"L{i}")
        bought.append((i, price))
        if i % 5 == 4:  # sell one lot by its id: its slot becomes a hole for the next buy
            sold, _ = bought.pop(len(bought) // 2)
            ledger.sell("XYZ", 1, 50.0, day + i, lot_id=f"L{sold}")
    n_before = ledger.n_sales
    ledger.sell("XYZ", len(bought), 50.0, day + 400)  # gains only: no wash sale
    relieved = ledger.sales(n_before)["cost_basis"].tolist()
    order = sorted(bought, key=(lambda lot: lot[0]) if relief == "fifo" else
                   (lambda lot: (-lot[1], lot[0])))
    assert relieved == pytest.approx([price for _, price in order])


def test_specific_identification_and_partial_lots_keep_basis_per_share():
    ledger = book()
    ledger.buy("XYZ", 10, 10.0, "2023-01-03", lot_id="old")
    ledger.buy("XYZ", 10, 30.0, "2023-02-01", lot_id="new")
    ledger.sell("XYZ", 4, 25.0, "2024-06-03", lot_id="new")
    assert sales_records(ledger)[0]["cost_basis"] == pytest.approx(120.0)
    remaining = {lot["lot"]: lot for lot in ledger.open_lots()}
    assert remaining["new"]["shares"] == 6 and remaining["new"]["cost_basis"] == pytest.approx(180)
    with pytest.raises(LedgerError, match="only 6"):
        ledger.sell("XYZ", 7, 25.0, "2024-06-04", lot_id="new")
    with pytest.raises(InputError, match="unknown lot_id"):
        ledger.sell("XYZ", 1, 25.0, "2024-06-04", lot_id="nope")


def test_oversell_is_refused():
    ledger = book()
    ledger.buy("XYZ", 10, 10.0, "2024-01-02")
    with pytest.raises(errors.LedgerError, match="only 10 held") as info:
        ledger.sell("XYZ", 11, 10.0, "2024-01-03")
    assert LedgerError is errors.LedgerError and info.value.trade == 0


def test_split_keeps_total_basis_and_scales_open_windows():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2024-01-02")
    ledger.buy("XYZ", 100, 12.0, "2024-01-03")
    ledger.sell("XYZ", 100, 8.0, "2024-05-01")  # loss 200 pending
    ledger.split("XYZ", 2.0, "2024-05-10")
    lot = only_lot(ledger)
    assert lot["shares"] == 200 and lot["cost_basis"] == pytest.approx(1200.0)
    ledger.buy("XYZ", 100, 4.0, "2024-05-20")  # replaces half of the (split-adjusted) loss
    assert sales_records(ledger)[0]["wash_sale_disallowed"] == pytest.approx(100.0)


def test_dividends_are_cash():
    ledger = book(cash=1000.0)
    ledger.buy("XYZ", 10, 50.0, "2024-01-02")
    assert ledger.dividend("XYZ", 0.5) == pytest.approx(5.0)
    assert ledger.cash == pytest.approx(1000.0 - 500.0 + 5.0)


def spun_off() -> Ledger:
    """Three XYZ lots, then a spin-off worth 10 a share with XYZ at 30 ex-distribution."""
    ledger = book(cash=10_000.0)
    ledger.buy("XYZ", 100, 20.0, "2023-01-03", lot_id="A")  # long-term at the spin-off
    ledger.buy("XYZ", 50, 60.0, "2024-03-01", lot_id="B")
    ledger.buy("XYZ", 10, 36.0, "2024-05-28", lot_id="C")  # bought within 30 days before
    assert ledger.distribution("XYZ", 10.0, 30.0, "2024-06-03") == pytest.approx(1600.0)
    return ledger


def test_spin_off_allocates_basis_by_relative_value_and_sells_the_distributed_property():
    ledger = spun_off()  # a quarter (10 / (30 + 10)) of each lot's basis moves
    assert ledger.cash == pytest.approx(10_000.0 - 2000.0 - 3000.0 - 360.0 + 1600.0)
    lots = {lot["lot"]: lot for lot in ledger.open_lots()}
    assert {k: (v["shares"], v["date_acquired"]) for k, v in lots.items()} == {
        "A": (100.0, "2023-01-03"), "B": (50.0, "2024-03-01"), "C": (10.0, "2024-05-28")}
    assert [lots[k]["cost_basis"] for k in "ABC"] == pytest.approx([1500.0, 2250.0, 270.0])
    a, b, c = sales_records(ledger)
    assert (a["kind"], a["term"], a["date_acquired"]) == ("distribution", "long", "2023-01-03")
    assert (a["proceeds"], a["cost_basis"], a["gain"]) == pytest.approx((1000.0, 500.0, 500.0))
    assert (b["proceeds"], b["cost_basis"], b["gain"]) == pytest.approx((500.0, 750.0, -250.0))
    assert (c["proceeds"], c["cost_basis"], c["gain"]) == pytest.approx((100.0, 90.0, 10.0))
    # a loss on the distributed property is no wash sale: lot C absorbed nothing
    assert ledger.total_disallowed == 0.0 and lots["C"]["wash_adjustment"] == 0.0
    assert ledger.realized(2024) == (pytest.approx(-240.0), pytest.approx(500.0))
    assert totals(ledger)["by_year"]["2024"]["long_term_gain"] == pytest.approx(500.0)
    rows = form_8949(ledger)
    assert [(r["part"], r["description"], r["code"]) for r in rows] == [
        ("I", "distribution on 50 sh XYZ", ""), ("I", "distribution on 10 sh XYZ", ""),
        ("II", "distribution on 100 sh XYZ", "")]
    assert schedule_d(rows)["2024"]["short"]["gain"] == pytest.approx(-240.0)


def test_spin_off_starts_no_wash_window_and_leaves_the_parent_wash_rule_alone():
    ledger = spun_off()
    assert ledger.last_loss_sale[0] < to_day("2000-01-01")  # no loss sale blocks a purchase
    ledger.sell("XYZ", 50, 30.0, "2024-06-10", lot_id="B")  # loss 2250 - 1500 = 15 a share
    ledger.buy("XYZ", 20, 31.0, "2024-06-20")
    sale = sales_records(ledger)[-1]
    assert sale["kind"] == "sale" and sale["cost_basis"] == pytest.approx(2250.0)
    # lot C (10 sh, bought 13 days before) and 20 of the new shares replace 30 of the 50
    assert sale["wash_sale_disallowed"] == pytest.approx(30 * 15.0)
    lots = {lot["lot"]: lot for lot in ledger.open_lots() if lot["lot"] == "C"}
    assert lots["C"]["cost_basis"] == pytest.approx(270.0 + 150.0)
    assert lots["C"]["date_acquired"] == "2024-02-17"  # 2024-05-28 less B's 101 days


def test_distribution_on_no_shares_or_of_nothing_logs_nothing():
    ledger = book("XYZ", "ABC")
    ledger.buy("XYZ", 10, 10.0, "2024-01-02")
    assert ledger.distribution("ABC", 1.0, 9.0, "2024-02-01") == 0.0
    assert ledger.distribution("XYZ", 0.0, 9.0, "2024-02-01") == 0.0
    assert ledger.n_sales == 0 and only_lot(ledger)["cost_basis"] == pytest.approx(100.0)
    with pytest.raises(LedgerError, match="non-negative"):
        ledger.distribution("XYZ", -1.0, 9.0, "2024-02-01")


def test_slots_grow_beyond_initial_capacity():
    ledger = Ledger(["XYZ"], slots=2)
    for k in range(40):
        ledger.buy("XYZ", 1, 10.0 + k, to_day("2024-01-02") + k)
    ledger.sell("XYZ", 40, 9.0, "2024-03-15")
    assert ledger.shares.shape[1] >= 40
    assert sum(s["shares"] for s in sales_records(ledger)) == pytest.approx(40)


def test_a_form_8949_row_adds_up_from_its_rounded_columns():
    ledger = book()
    ledger.buy("XYZ", 3, 10.005, "2024-01-02")
    ledger.sell("XYZ", 3, 7.3333, "2024-05-01")
    ledger.buy("XYZ", 1, 7.0, "2024-05-05")  # washes a third of the loss
    (row,) = form_8949(ledger)
    assert row["code"] == "W"
    assert row["gain"] == round(row["proceeds"] - row["cost_basis"] + row["adjustment"], 2)


def test_form_8949_rows_and_schedule_d():
    ledger = book()
    ledger.buy("XYZ", 100, 10.0, "2022-01-03")
    ledger.buy("XYZ", 100, 10.0, "2024-01-02")
    ledger.sell("XYZ", 100, 12.0, "2024-02-01")  # long gain 200
    ledger.sell("XYZ", 50, 8.0, "2024-03-01")  # short loss 100, washed below
    ledger.buy("XYZ", 50, 8.0, "2024-03-05")
    rows = form_8949(ledger)
    assert [r["part"] for r in rows] == ["I", "II"]
    washed = rows[0]
    assert washed["code"] == "W" and washed["adjustment"] == pytest.approx(100.0)
    for r in rows:
        assert r["gain"] == pytest.approx(r["proceeds"] - r["cost_basis"] + r["adjustment"])
    summary = schedule_d(rows)["2024"]
    assert summary["long"]["gain"] == pytest.approx(200.0)
    assert summary["short"] == {"proceeds": 400.0, "cost_basis": 500.0, "adjustment": 100.0,
                                "gain": 0.0, "rows": 1}
