"""The capacity model (bench/capacity.py): its arithmetic and its inputs, no network."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from bench import capacity

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def inputs() -> dict:
    return capacity.load_inputs()


def _rows(result: dict, region: str) -> dict[str, dict]:
    return {row["quota"]: row for row in result["regions"][region]["rows"]}


def _with(inputs: dict, section: str, **changes: object) -> dict:
    changed = copy.deepcopy(inputs)
    changed[section].update(changes)
    return changed


def test_the_inputs_have_every_quota_for_both_regions(inputs):
    assert capacity.problems(inputs) == []
    assert set(capacity.REGIONS) <= set(inputs["regions"])
    for name in capacity.QUOTAS:
        quota = inputs["quotas"][name]
        assert isinstance(quota["adjustable"], bool), name
        assert quota["raise"], name
        for region in capacity.REGIONS:
            assert quota[region] > 0, (name, region)


def test_a_quota_missing_in_a_region_is_named():
    broken = copy.deepcopy(capacity.load_inputs())
    del broken["quotas"]["sfn_transitions"]["cn-north-1"]
    assert capacity.problems(broken) == ["quota sfn_transitions: no value for cn-north-1"]
    with pytest.raises(ValueError, match="sfn_transitions"):
        capacity.model(broken)


def test_every_journey_of_the_day_has_its_costs(inputs):
    assert set(capacity.daily_journeys(inputs["day"])) == set(inputs["journeys"])


def test_doubling_the_traffic_doubles_every_demand(inputs):
    single = capacity.model(inputs)
    double = capacity.model(_with(inputs, "launch", multiplier=2 * inputs["launch"]["multiplier"]))
    for region in capacity.REGIONS:
        before, after = _rows(single, region), _rows(double, region)
        for name in capacity.QUOTAS:
            assert after[name]["demand"] == pytest.approx(2 * before[name]["demand"]), (region, name)
            assert after[name]["utilisation"] == pytest.approx(2 * before[name]["utilisation"]), (region, name)
            # Where a quota binds is a property of the quota and the mix, not of the launch chosen.
            assert after[name]["binds_at"] == pytest.approx(before[name]["binds_at"]), (region, name)


def test_a_busier_peak_hour_raises_every_demand_in_proportion(inputs):
    single = capacity.model(inputs)
    busier = capacity.model(_with(inputs, "day", peak_hour_share=3 * inputs["day"]["peak_hour_share"]))
    for name in capacity.QUOTAS:
        tripled = 3 * _rows(single, "us-east-1")[name]["demand"]
        assert _rows(busier, "us-east-1")[name]["demand"] == pytest.approx(tripled), name


def test_more_coupon_shards_lower_the_hottest_shard_in_proportion(inputs):
    shards = inputs["launch"]["coupon_stock_shards"]
    hottest = capacity.demands(inputs, 56)["partition_write_coupon_stock"].value
    doubled = capacity.demands(_with(inputs, "launch", coupon_stock_shards=2 * shards), 56)
    assert doubled["partition_write_coupon_stock"].value == pytest.approx(hottest / 2)
    assert doubled["table_write"].value == pytest.approx(capacity.demands(inputs, 56)["table_write"].value)


def test_more_launch_shards_lower_the_hottest_stock_row_in_proportion(inputs):
    hottest = capacity.demands(inputs, 56)["partition_write_launch_stock"].value
    spread = capacity.demands(_with(inputs, "launch", launch_stock_shards=32), 56)
    expected = hottest * inputs["launch"]["launch_stock_shards"] / 32
    assert spread["partition_write_launch_stock"].value == pytest.approx(expected)


def test_the_hottest_coupon_shard_takes_its_share_of_the_campaigns_claims(inputs):
    launch = inputs["launch"]
    claims = capacity.journey_rates(inputs, 56)["coupon_claim"]
    expected = (claims * launch["claims_on_launch_campaign"] * launch["coupon_stock_writes_per_claim"]
                / launch["coupon_stock_shards"] * launch["coupon_busiest_shard_skew"] * 2)
    assert capacity.demands(inputs, 56)["partition_write_coupon_stock"].value == pytest.approx(expected)


def test_the_binding_quota_is_the_one_used_most(inputs):
    result = capacity.model(inputs)
    for region in capacity.REGIONS:
        rows = result["regions"][region]["rows"]
        binding = result["regions"][region]["binding"]
        assert binding["utilisation"] == max(row["utilisation"] for row in rows)
        assert binding["binds_at"] == min(row["binds_at"] for row in rows)
        assert not result["regions"][region]["binding_aws"]["ours"]


def test_a_quota_binds_where_its_demand_meets_it(inputs):
    result = capacity.model(inputs)
    normal = result["normal_peak"]
    for region in capacity.REGIONS:
        for row in result["regions"][region]["rows"]:
            at_binding = _rows(capacity.model(_with(inputs, "launch", multiplier=row["binds_at"])), region)
            assert at_binding[row["quota"]]["utilisation"] == pytest.approx(1.0)
            assert row["orders_per_second"] == pytest.approx(normal["orders_per_second"] * row["binds_at"])
            assert row["claims_per_second"] == pytest.approx(normal["claims_per_second"] * row["binds_at"])


def test_lambda_binds_first_when_its_concurrency_is_tiny(inputs):
    tiny = copy.deepcopy(inputs)
    for region in capacity.REGIONS:
        tiny["quotas"]["lambda_concurrency"][region] = 35
    tiny["quotas"]["lambda_concurrency"]["reserved"] = 30
    result = capacity.model(tiny)
    for region in capacity.REGIONS:
        binding = result["regions"][region]["binding"]
        assert binding["quota"] == "lambda_concurrency"
        assert binding["limit"] == 5


def test_beijing_meets_the_state_transition_quota_before_virginia(inputs):
    result = capacity.model(inputs)
    virginia, beijing = _rows(result, "us-east-1"), _rows(result, "cn-north-1")
    assert beijing["sfn_transitions"]["demand"] == virginia["sfn_transitions"]["demand"]
    ratio = inputs["quotas"]["sfn_transitions"]["us-east-1"] / inputs["quotas"]["sfn_transitions"]["cn-north-1"]
    assert beijing["sfn_transitions"]["utilisation"] == pytest.approx(virginia["sfn_transitions"]["utilisation"] * ratio)


def test_a_paid_order_makes_seven_transitions_and_one_start(inputs):
    journeys = inputs["journeys"]
    pickup = ["payment_notification", "staff_accept", "staff_ready", "staff_pickup", "refund_window_close"]
    delivery = [name if name != "staff_pickup" else "courier_callbacks" for name in pickup]
    for path in (pickup, delivery):
        assert sum(journeys[name]["transitions"] for name in path) == 7  # bench/REPORT.md, transitions per order
        assert sum(journeys[name]["start_executions"] for name in path) == 1


def test_the_utilisation_curves_are_linear_in_the_traffic(inputs):
    curves = capacity.utilisation_curves(inputs, "cn-north-1", range(1, 11))
    for name, points in curves.items():
        first = points[0][1]
        assert [u for _, u in points] == pytest.approx([m * first for m, _ in points]), name


def test_the_section_and_its_plot(inputs, tmp_path):
    section = capacity.run(None, tmp_path)
    assert section.startswith("## Capacity past one machine")
    for region in capacity.REGIONS:
        assert f"### {region}" in section
    assert "![" in section and "(capacity.png)" in section
    assert (tmp_path / "capacity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bars_draws_a_png(tmp_path):
    from bench import plots

    path = plots.bars(tmp_path / "bars.png", "cost", "mode", "$", {"pickup": 0.33, "delivery": 0.31}, goal=0.30)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_lines_refuses_a_series_that_is_not_points(tmp_path):
    from bench import plots

    with pytest.raises(TypeError, match="series 'p50'"):
        plots.lines(tmp_path / "lines.png", "t", "x", "y", {"p50": ([1, 2, 3], [4, 5, 6])})


def test_importing_the_model_does_not_import_matplotlib():
    code = "import sys, bench.capacity, bench.plots; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
