"""Capacity past one machine: which AWS quota a launch meets first, in each region.

The bench measures one machine; this models the deployed stack. Inputs are in
bench/capacity_inputs.toml, each with its source: what every journey costs
(DynamoDB requests and units per table, Lambda ms, Step Functions requests,
API Gateway requests, mostly from bench/REPORT.md), a normal day of a brand
of ten million members, the launch, and each region's quotas.

Every demand is a rate at the normal day's peak hour times a traffic
multiplier (the launch is 56), so utilisation (demand / quota) grows linearly
with it and a quota binds at multiplier `1 / utilisation at 1`. Hot items are
what sharding spreads: the launch campaign's claims over its stock shards, the
launch SKU's orders over its stock rows at the busiest store; one item can take
no more than its partition.

`model(inputs)` is pure; `run(stack)` renders the report's section and draws
capacity.png; `python -m bench.capacity [output dir]` prints the section.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "INPUTS",
    "REGIONS",
    "QUOTAS",
    "load_inputs",
    "problems",
    "journey_rates",
    "demands",
    "model",
    "utilisation_curves",
    "plot",
    "markdown",
    "run",
]

HERE = Path(__file__).resolve().parent
INPUTS = HERE / "capacity_inputs.toml"
PLOT_NAME = "capacity.png"
REGIONS = ("us-east-1", "cn-north-1")
QUOTAS = (
    "partition_write_coupon_stock",
    "partition_write_launch_stock",
    "partition_read_launch_sku",
    "table_write",
    "table_read",
    "table_write_instant",
    "table_read_instant",
    "lambda_concurrency",
    "lambda_scaling",
    "sfn_start_execution",
    "sfn_transitions",
    "apigw_account",
    "apigw_stage",
)
JOURNEY_FIELDS = (
    "api_requests", "api_ms", "task_invocations", "task_ms", "dynamodb_requests", "item_writes",
    "start_executions", "transitions", "write_units", "read_units",
)
# What on-demand takes at once is per table (each has its own previous peak): the units each one counts.
INSTANT_QUOTAS = {"table_write_instant": "write_units", "table_read_instant": "read_units"}
MULTIPLIERS = range(1, 101)
SECONDS_PER_HOUR = 3600


def load_inputs(path: Path | str = INPUTS) -> dict[str, Any]:
    with open(path, "rb") as file:
        return tomllib.load(file)


def problems(inputs: dict[str, Any]) -> list[str]:
    """What the inputs lack for the model: a quota without a value for a region, a journey without a field."""
    found = [f"region {region} is missing" for region in REGIONS if region not in inputs.get("regions", {})]
    for name in QUOTAS:
        quota = inputs.get("quotas", {}).get(name)
        if quota is None:
            found.append(f"quota {name} is missing")
            continue
        found += [f"quota {name}: no value for {region}" for region in inputs.get("regions", {}) if region not in quota]
        if not isinstance(quota.get("adjustable"), bool):
            found.append(f"quota {name}: adjustable is not true or false")
    journeys = inputs.get("journeys", {})
    for name, journey in journeys.items():
        found += [f"journey {name}: no {field}" for field in JOURNEY_FIELDS if field not in journey]
    if "day" in inputs:
        found += [f"journey {name}: no costs" for name in daily_journeys(inputs["day"]) if name not in journeys]
    return found


# --- Traffic ---------------------------------------------------------------------------

def daily_journeys(day: dict[str, Any]) -> dict[str, float]:
    """How many of each journey a normal day holds."""
    active = day["members"] * day["daily_active_share"]
    paid = day["orders"] * day["paid_share"]
    return {
        "login": active * day["logins_per_active"],
        "first_login": day["new_members"],
        "member_home": active * day["home_views_per_active"],
        "browse_stores": active * day["store_browses_per_active"],
        "points_checkin": active * day["checkins_per_active"],
        "coupon_claim": day["coupon_claims"],
        "appointment_booking": day["appointments"],
        "order_create": day["orders"],
        "payment_notification": paid,
        "order_view": paid * day["views_per_paid_order"],
        "staff_accept": paid,
        "staff_ready": paid,
        "staff_pickup": paid * (1 - day["delivery_share"]),
        "courier_callbacks": paid * day["delivery_share"],
        "refund_window_close": paid,
    }


def journey_rates(inputs: dict[str, Any], multiplier: float) -> dict[str, float]:
    """Journeys a second: the normal day's peak hour times `multiplier`."""
    day = inputs["day"]
    per_second = day["peak_hour_share"] / SECONDS_PER_HOUR * multiplier
    return {name: count * per_second for name, count in daily_journeys(day).items()}


# --- Demand on each quota ----------------------------------------------------------------

@dataclass(frozen=True)
class Demand:
    value: float
    detail: str = ""  # which table, for the table quotas


def _total(inputs: dict[str, Any], rates: dict[str, float], field: str) -> float:
    return sum(rate * inputs["journeys"][name][field] for name, rate in rates.items())


def _per_table(inputs: dict[str, Any], rates: dict[str, float], field: str) -> dict[str, float]:
    tables: dict[str, float] = {}
    for name, rate in rates.items():
        for table, units in inputs["journeys"][name][field].items():
            tables[table] = tables.get(table, 0.0) + rate * units
    return tables


def _busiest(tables: dict[str, float]) -> Demand:
    if not tables:
        return Demand(0.0, "-")
    table = max(tables, key=tables.__getitem__)
    return Demand(tables[table], table)


def demands(inputs: dict[str, Any], multiplier: float) -> dict[str, Demand]:
    """The demand on each quota at `multiplier` times the normal peak (the same in every region).

    What on-demand takes at once depends on each table's own peak: `model` adds those.
    """
    rates = journey_rates(inputs, multiplier)
    launch = inputs["launch"]
    wru = launch["wru_per_transactional_write"]
    launch_claims = rates["coupon_claim"] * launch["claims_on_launch_campaign"]
    launch_orders = rates["order_create"] * launch["orders_on_launch_sku"]
    at_busiest_store = launch_orders * launch["busiest_store_share"]
    api_ms = _total(inputs, rates, "api_ms")
    return {
        "partition_write_coupon_stock": Demand(
            launch_claims * launch["coupon_stock_writes_per_claim"] / launch["coupon_stock_shards"]
            * launch["coupon_busiest_shard_skew"] * wru,
            f"{launch['coupon_stock_shards']} shards",
        ),
        "partition_write_launch_stock": Demand(
            at_busiest_store * launch["launch_stock_writes_per_order"] / launch["launch_stock_shards"]
            * launch["launch_busiest_row_skew"] * wru,
            f"{launch['launch_stock_shards']} rows",
        ),
        "partition_read_launch_sku": Demand(launch_orders * launch["launch_sku_reads_per_order"], "skus"),
        "table_write": _busiest(_per_table(inputs, rates, "write_units")),
        "table_read": _busiest(_per_table(inputs, rates, "read_units")),
        "lambda_concurrency": Demand((api_ms + _total(inputs, rates, "task_ms")) / 1000),
        "lambda_scaling": Demand(api_ms / 1000, "API handler"),
        "sfn_start_execution": Demand(_total(inputs, rates, "start_executions")),
        "sfn_transitions": Demand(_total(inputs, rates, "transitions")),
        "apigw_account": Demand(_total(inputs, rates, "api_requests")),
        "apigw_stage": Demand(_total(inputs, rates, "api_requests")),
    }


def _instant_demand(inputs: dict[str, Any], name: str, region: str, multiplier: float) -> tuple[Demand, float]:
    """The table nearest what on-demand takes at once, and that limit: a new table's, or twice its normal peak."""
    quota, field = inputs["quotas"][name], INSTANT_QUOTAS[name]
    normal_peak = _per_table(inputs, journey_rates(inputs, 1), field)
    limits = {table: max(quota[region], quota["previous_peak_factor"] * units) for table, units in normal_peak.items()}
    tables = _per_table(inputs, journey_rates(inputs, multiplier), field)
    if not tables:
        return Demand(0.0, "-"), quota[region]
    table = max(tables, key=lambda t: tables[t] / limits[t])
    return Demand(tables[table], table), limits[table]


def _limit(inputs: dict[str, Any], name: str, region: str) -> float:
    quota = inputs["quotas"][name]
    return quota[region] - quota.get("reserved", 0)


# --- The model ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    quota: str
    what: str
    unit: str
    demand: float
    limit: float
    utilisation: float
    binds_at: float  # the traffic multiplier at which demand reaches the quota
    orders_per_second: float  # order attempts a second at that multiplier
    claims_per_second: float
    adjustable: bool
    ours: bool
    raise_it: str
    detail: str
    bucket: float | None
    bucket_seconds: float | None  # how long the token bucket carries a demand above the refill rate


def _rows(inputs: dict[str, Any], region: str, multiplier: float) -> list[Row]:
    found = demands(inputs, multiplier)
    normal = journey_rates(inputs, 1)
    rows = []
    for name in QUOTAS:
        quota = inputs["quotas"][name]
        if name in INSTANT_QUOTAS:
            demand, limit = _instant_demand(inputs, name, region, multiplier)
        else:
            demand, limit = found[name], _limit(inputs, name, region)
        utilisation = demand.value / limit
        binds_at = multiplier / utilisation if utilisation else float("inf")
        bucket = quota.get(f"{region}-bucket")
        over_refill = demand.value - limit
        rows.append(Row(
            quota=name,
            what=quota["what"],
            unit=quota["unit"],
            demand=demand.value,
            limit=limit,
            utilisation=utilisation,
            binds_at=binds_at,
            orders_per_second=normal["order_create"] * binds_at,
            claims_per_second=normal["coupon_claim"] * binds_at,
            adjustable=quota["adjustable"],
            ours=quota.get("ours", False),
            raise_it=quota["raise"],
            detail=demand.detail,
            bucket=bucket,
            bucket_seconds=bucket / over_refill if bucket is not None and over_refill > 0 else None,
        ))
    return sorted(rows, key=lambda row: row.utilisation, reverse=True)


def model(inputs: dict[str, Any]) -> dict[str, Any]:
    """Demand, quota and utilisation of every quota in every region at the launch, and what binds first."""
    missing = problems(inputs)
    if missing:
        raise ValueError("capacity inputs are incomplete:\n  " + "\n  ".join(missing))
    multiplier = inputs["launch"]["multiplier"]
    normal, launch = journey_rates(inputs, 1), journey_rates(inputs, multiplier)
    regions = {}
    for region, about in inputs["regions"].items():
        rows = [asdict(row) for row in _rows(inputs, region, multiplier)]
        regions[region] = {
            "name": about["name"],
            "rows": rows,
            "binding": rows[0],
            "binding_aws": next(row for row in rows if not row["ours"]),
        }
    return {
        "multiplier": multiplier,
        "journeys": {
            name: {"per_day": count, "peak_per_second": normal[name], "launch_per_second": launch[name]}
            for name, count in daily_journeys(inputs["day"]).items()
        },
        "normal_peak": {"orders_per_second": normal["order_create"], "claims_per_second": normal["coupon_claim"]},
        "launch": {"orders_per_second": launch["order_create"], "claims_per_second": launch["coupon_claim"]},
        "regions": regions,
    }


def utilisation_curves(inputs: dict[str, Any], region: str,
                       multipliers: range = MULTIPLIERS) -> dict[str, list[tuple[float, float]]]:
    """Per quota, (multiplier, utilisation) for each multiplier."""
    curves: dict[str, list[tuple[float, float]]] = {name: [] for name in QUOTAS}
    for multiplier in multipliers:
        for row in _rows(inputs, region, multiplier):
            curves[row.quota].append((multiplier, row.utilisation))
    return curves


def plot(inputs: dict[str, Any], out_dir: Path | str = HERE) -> Path:
    """capacity.png in `out_dir`: utilisation of each quota by traffic multiplier, for every region."""
    from bench import plots

    by_region = {region: utilisation_curves(inputs, region) for region in inputs["regions"]}
    series: dict[str, list[tuple[float, float]]] = {}
    for name in QUOTAS:
        curves = [by_region[region][name] for region in by_region]
        if all(curve == curves[0] for curve in curves):
            series[f"all regions: {name}"] = curves[0]
        else:
            series.update({f"{region}: {name}": by_region[region][name] for region in by_region})
    return plots.lines(
        Path(out_dir) / PLOT_NAME,
        "Quota utilisation by traffic (1 = the quota)",
        "traffic, times the normal day's peak hour",
        "demand / quota",
        series,
        hline=1.0,
        logy=True,
    )


# --- The report section ------------------------------------------------------------------

def _figure(value: float) -> str:
    if value == float("inf"):
        return "never"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.4f}"


def _limit_cell(row: dict[str, Any]) -> str:
    cell = f"{_figure(row['limit'])} {row['unit']}"
    if row["bucket"] is not None:
        carried = f", carries {_figure(row['bucket_seconds'])} s" if row["bucket_seconds"] is not None else ""
        cell += f" (bucket {row['bucket']:,}{carried})"
    return cell


def _region_section(region: str, result: dict[str, Any], multiplier: float) -> list[str]:
    first, aws = result["binding"], result["binding_aws"]
    lines = [
        f"### {region}, {result['name']}",
        "",
        f"| quota | demand at {multiplier:g}x | quota | utilisation | binds at | order attempts/s there"
        " | claims/s there | adjustable | what raises it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        detail = f" ({row['detail']})" if row["detail"] else ""
        adjustable = ("ours" if row["ours"] else "yes") if row["adjustable"] else "no"
        lines.append(
            f"| {row['what']}{detail} | {_figure(row['demand'])} | {_limit_cell(row)} | "
            f"**{row['utilisation']:.2f}** | {_figure(row['binds_at'])}x | {_figure(row['orders_per_second'])} | "
            f"{_figure(row['claims_per_second'])} | {adjustable} | {row['raise_it']} |"
        )
    lines += ["", f"Binds first: **{first['what']}** at {_figure(first['binds_at'])}x the normal peak "
              f"({_figure(first['orders_per_second'])} order attempts/s, "
              f"{_figure(first['claims_per_second'])} claims/s)."]
    if aws is not first:
        lines.append(f"First AWS quota: **{aws['what']}** at {_figure(aws['binds_at'])}x "
                     f"({_figure(aws['orders_per_second'])} order attempts/s, "
                     f"{_figure(aws['claims_per_second'])} claims/s).")
    return lines + [""]


def markdown(inputs: dict[str, Any], result: dict[str, Any], plot_name: str | None = PLOT_NAME) -> str:
    multiplier = result["multiplier"]
    day = inputs["day"]
    lines = [
        "## Capacity past one machine",
        "",
        "A model of the deployed stack, not a measurement: each journey's cost comes from the measures above "
        "(Lambda ms are estimates from them), the traffic is assumed, the quotas are AWS's defaults "
        "(bench/capacity_inputs.toml names the source of every figure). Demand is the normal day's peak hour "
        f"times a multiplier; the launch is {multiplier:g}x. A quota binds at the multiplier where demand "
        "reaches it; token buckets carry a few seconds above their refill rate.",
        "",
        f"A normal day: {day['members']:,} members, {day['daily_active_share']:.0%} active, "
        f"{day['orders']:,} order attempts ({day['paid_share']:.0%} paid), {day['coupon_claims']:,} coupon claims, "
        f"{day['peak_hour_share']:.0%} of it in the peak hour. The launch puts "
        f"{inputs['launch']['claims_on_launch_campaign']:.0%} of its claims on one campaign "
        f"({inputs['launch']['coupon_stock_shards']} stock shards) and "
        f"{inputs['launch']['orders_on_launch_sku']:.0%} of its orders on one SKU, "
        f"{inputs['launch']['busiest_store_share']:.0%} of those at the busiest store "
        f"({inputs['launch']['launch_stock_shards']} stock rows).",
        "",
        "| journey | per day | a second at the peak | a second at the launch |",
        "|---|---|---|---|",
    ]
    for name, journey in result["journeys"].items():
        lines.append(f"| {name} | {journey['per_day']:,.0f} | {_figure(journey['peak_per_second'])} | "
                     f"{_figure(journey['launch_per_second'])} |")
    lines.append("")
    for region, region_result in result["regions"].items():
        lines += _region_section(region, region_result, multiplier)
    express = inputs["express"]
    lines += [
        "Not modelled: SendTaskSuccess throttling (three calls an order), the nightly jobs (off the peak), "
        "CloudWatch. Express workflows (StartExecution "
        f"{express['start_execution']:,}/s, no transition quota) cannot wait for a task token, so an order's "
        f"waits stay Standard; moving its straight-through start would save {express['transitions_movable_per_order']} "
        "transition an order.",
        "",
    ]
    if plot_name:
        lines += [f"![Quota utilisation by traffic multiplier]({plot_name})", ""]
    return "\n".join(lines)


def _figures(result: dict[str, Any]) -> None:
    import bench

    multiplier = result["multiplier"]
    for region, found in result["regions"].items():
        first, aws = found["binding"], found["binding_aws"]
        bench.figure(f"capacity, {region}: what binds first", f"{first['what']} at {_figure(first['binds_at'])}x",
                     f"past {multiplier:g}x", first["binds_at"] >= multiplier)
        if aws is not first:
            bench.figure(f"capacity, {region}: first AWS quota", f"{aws['what']} at {_figure(aws['binds_at'])}x",
                         f"past {multiplier:g}x", aws["binds_at"] >= multiplier)


def run(stack: Any = None, out_dir: Path | str | None = None) -> str:
    """The report's section; draws capacity.png in `out_dir` (the run's). `stack` is not used: nothing here runs."""
    from bench import output_dir

    inputs = load_inputs()
    result = model(inputs)
    plot(inputs, out_dir or output_dir())
    _figures(result)
    return markdown(inputs, result)


if __name__ == "__main__":
    print(run(None, sys.argv[1] if len(sys.argv) > 1 else None))
