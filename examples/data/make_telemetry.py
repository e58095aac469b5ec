"""Write telemetry.csv: per-host, per-5-minute compute and network telemetry with injected
aberrant behaviour and a label column (``injected``: 1 for an injected row, else 0; named so that it does not
clash with the ``is_anomaly`` column that ``predict`` adds).

Normal rows follow a daily load cycle in which CPU, connections and network traffic rise together.
Four kinds of aberrant behaviour break those relations rather than only taking extreme values:

* ``cryptominer``: CPU pinned high with ordinary traffic and connections;
* ``exfiltration``: outbound bytes far above inbound at ordinary load;
* ``port_scan``: many short connections carrying almost no bytes;
* ``memory_leak``: memory near full at ordinary CPU.

Deterministic: ``python examples/data/make_telemetry.py`` always writes the same file (seed 42).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

KINDS = ("cryptominer", "exfiltration", "port_scan", "memory_leak")


def make_telemetry(rows: int = 6000, anomaly_share: float = 0.03, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rows)
    load = 0.5 + 0.4 * np.sin((hour - 8) / 24 * 2 * np.pi) + rng.normal(0, 0.08, rows)
    load = np.clip(load, 0.05, 1.0)
    connections = rng.poisson(20 + 180 * load)
    cpu = np.clip(10 + 60 * load + rng.normal(0, 5, rows), 0, 100)
    memory = np.clip(35 + 25 * load + rng.normal(0, 4, rows), 0, 100)
    net_in = np.maximum(0.1, connections * rng.lognormal(np.log(0.4), 0.25, rows))
    net_out = np.maximum(0.1, net_in * rng.lognormal(np.log(0.6), 0.25, rows))
    disk_io = np.maximum(0.0, 5 + 40 * load + rng.normal(0, 6, rows))
    frame = pd.DataFrame(
        {
            "host": rng.choice([f"node-{i:02d}" for i in range(12)], rows),
            "hour": hour,
            "cpu_pct": cpu,
            "memory_pct": memory,
            "net_in_mb": net_in,
            "net_out_mb": net_out,
            "connections": connections,
            "disk_io_mb": disk_io,
        }
    )
    n_bad = int(round(rows * anomaly_share))
    bad = rng.choice(rows, n_bad, replace=False)
    kind = np.array(["normal"] * rows, dtype=object)
    kind[bad] = rng.choice(KINDS, n_bad)
    for i in bad:
        k = kind[i]
        if k == "cryptominer":
            frame.loc[i, "cpu_pct"] = rng.uniform(88, 100)
            frame.loc[i, "connections"] = rng.poisson(30)
            frame.loc[i, "net_in_mb"] = frame.loc[i, "connections"] * 0.4
            frame.loc[i, "net_out_mb"] = frame.loc[i, "net_in_mb"] * 0.6
        elif k == "exfiltration":
            frame.loc[i, "net_out_mb"] = frame.loc[i, "net_in_mb"] * rng.uniform(4, 10)
        elif k == "port_scan":
            frame.loc[i, "connections"] = rng.integers(600, 1500)
            frame.loc[i, "net_in_mb"] = rng.uniform(1, 8)
            frame.loc[i, "net_out_mb"] = rng.uniform(1, 8)
        else:
            frame.loc[i, "memory_pct"] = rng.uniform(93, 100)
    frame["anomaly_kind"] = kind
    frame["injected"] = (kind != "normal").astype(int)
    return frame.round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("telemetry.csv"))
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    frame = make_telemetry(args.rows, seed=args.seed)
    frame.to_csv(args.output, index=False)
    print(f"wrote {args.output}: {len(frame)} rows, {int(frame['injected'].sum())} anomalies")


if __name__ == "__main__":
    main()
