"""The enqueuer hands the customers out one region after another in turn."""

from __future__ import annotations

from cspgraph.distributed.engine import region_turns
from cspgraph.fleet.customers import CustomerRef


def test_customers_are_enqueued_one_region_after_another_in_turn() -> None:
    listed = [("na1", "NA"), ("na2", "NA"), ("na3", "NA"), ("eu1", "EU"), ("ap1", "AP")]
    customers = {key: CustomerRef(key, tenant_id=key, region=region) for key, region in listed}
    assert list(region_turns(customers)) == ["na1", "eu1", "ap1", "na2", "na3"]
