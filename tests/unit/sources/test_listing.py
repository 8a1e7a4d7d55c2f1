"""IDC's listings through libcurl: retried on 503, then a clear error; unreachable and missing
endpoints say so. Real moto S3 behind the fault-injecting proxy."""

from __future__ import annotations

import pytest

from mediator_desktop.core.errors import SourceError
from mediator_desktop.core.pointer import Pointer
from mediator_desktop.core.selection import Selection
from mediator_desktop.sources.idc import IdcSource
from tests.helpers.idc_world import BUCKET, IdcWorld
from tests.helpers.net import free_ports

pytestmark = pytest.mark.timeout(60)


def test_listings_are_retried_then_fail_with_what_happened(world: IdcWorld) -> None:
    source = IdcSource(world.index, endpoint_url=world.proxy.url)
    leaf = next(iter(source.resolve(Selection.of(Pointer.of("idc", "lung_b", "pb1", "pb1.st", "2.1")))))
    before = len(world.proxy.gets(BUCKET))
    world.proxy.fault(BUCKET, "503", "503")
    plan = source.plan(leaf)
    assert len(plan.files) == 2 and len(world.proxy.gets(BUCKET)) == before + 3
    world.proxy.fault(BUCKET, *["503"] * 4)
    with pytest.raises(SourceError, match=r"IDC answered 503 for the objects of series 2\.1 after retries"):
        source.plan(leaf)
    (port,) = free_ports(1)
    nowhere = IdcSource(world.index, endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(SourceError, match=r"IDC cannot be reached for the objects of series 2\.1"):
        nowhere.plan(leaf)
