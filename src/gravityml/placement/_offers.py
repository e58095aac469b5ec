"""The catalog's offers as columns (numpy arrays), built once and shared by every plan.

One row per (site, offer, market): an owned offer gives one row, a cloud offer one on-demand row
and, where it has a spot price, one spot row. Plans evaluate all rows at once, which is what lets
1,000 jobs be planned against 10,000 offers in seconds (see ``benchmarks/planner.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gravityml.data import Catalog
from gravityml.errors import CatalogError
from gravityml.placement._hardware import hardware


@dataclass(frozen=True, eq=False)
class OfferTable:
    """Columns over offer rows (``row_*``) and over sites (``site_*``); never mutated."""

    catalog: Catalog
    site_names: tuple[str, ...]
    site_cloud: np.ndarray  # bool per site
    site_jurisdiction: np.ndarray  # str per site
    site_egress_usd_per_gb: np.ndarray
    site_storage_usd_per_gb_month: np.ndarray
    bandwidth_gbps: np.ndarray  # [from site, to site]
    site_certified: dict[str, np.ndarray]  # certification -> bool per site
    row_site: np.ndarray  # int index into site_names
    row_offer: tuple[str, ...]
    row_market: tuple[str, ...]  # owned | on_demand | spot
    row_accelerator: tuple[str, ...]
    row_gpu: np.ndarray
    row_tflops: np.ndarray  # per accelerator (per core for cpu)
    row_per_node: np.ndarray
    row_nodes: np.ndarray
    row_free_nodes: np.ndarray
    row_queue_wait_hours: np.ndarray
    row_provisioning_hours: np.ndarray
    row_hourly_usd: np.ndarray  # per node
    row_spot: np.ndarray  # bool: the row is a spot price
    row_spark: np.ndarray  # bool: the row's site runs its jobs on a Spark cluster (executor: {spark: ...})
    site_index: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.row_offer)

    def with_hourly_usd(self, hourly_usd: np.ndarray) -> OfferTable:
        """A copy with other prices (what-if analysis, property tests)."""
        from dataclasses import replace

        return replace(self, row_hourly_usd=np.asarray(hourly_usd, dtype=float))


def offer_table(catalog: Catalog) -> OfferTable:
    """Flatten ``catalog`` into an :class:`OfferTable` (checks every accelerator name)."""
    names = tuple(catalog.sites)
    index = {n: i for i, n in enumerate(names)}
    rows: list[tuple] = []
    for s, (sname, site) in enumerate(catalog.sites.items()):
        for o, offer in enumerate(site.offers):
            try:
                hw = hardware(offer.accelerator)
            except CatalogError as exc:
                raise CatalogError(
                    f"sites.{sname}.offers.{o}.accelerator", exc.what.split(": ", 1)[-1],
                    allowed=exc.allowed, got=exc.got, fix=exc.fix,
                ) from None
            base = (s, offer.name, offer.accelerator, hw.kind == "gpu", hw.tflops, offer.per_node,
                    offer.nodes, offer.free_nodes, offer.queue_wait_hours, offer.provisioning_hours)
            if offer.cloud is not None:
                rows.append((*base, "on_demand", offer.cloud.on_demand_hourly_usd))
                if offer.cloud.spot_hourly_usd is not None:
                    rows.append((*base, "spot", offer.cloud.spot_hourly_usd))
            else:
                rows.append((*base, "owned", offer.hourly_usd))
    n = len(names)
    bandwidth = np.empty((n, n))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            bandwidth[i, j] = catalog.bandwidth_gbps(a, b) if i != j else np.inf
    certs = sorted({c for site in catalog.sites.values() for c in site.certifications})
    cols = list(zip(*rows))
    return OfferTable(
        catalog=catalog,
        site_names=names,
        site_cloud=np.array([s.kind == "cloud" for s in catalog.sites.values()]),
        site_jurisdiction=np.array([s.jurisdiction for s in catalog.sites.values()]),
        site_egress_usd_per_gb=np.array([s.egress_usd_per_gb for s in catalog.sites.values()]),
        site_storage_usd_per_gb_month=np.array([s.storage_usd_per_gb_month for s in catalog.sites.values()]),
        bandwidth_gbps=bandwidth,
        site_certified={c: np.array([c in s.certifications for s in catalog.sites.values()]) for c in certs},
        row_site=np.array(cols[0], dtype=np.int64),
        row_offer=tuple(cols[1]),
        row_accelerator=tuple(cols[2]),
        row_gpu=np.array(cols[3], dtype=bool),
        row_tflops=np.array(cols[4], dtype=float),
        row_per_node=np.array(cols[5], dtype=np.int64),
        row_nodes=np.array(cols[6], dtype=np.int64),
        row_free_nodes=np.array(cols[7], dtype=np.int64),
        row_queue_wait_hours=np.array(cols[8], dtype=float),
        row_provisioning_hours=np.array(cols[9], dtype=float),
        row_market=tuple(cols[10]),
        row_hourly_usd=np.array(cols[11], dtype=float),
        row_spot=np.array([m == "spot" for m in cols[10]], dtype=bool),
        row_spark=np.array([catalog.sites[names[i]].spark is not None for i in cols[0]], dtype=bool),
        site_index=index,
    )
