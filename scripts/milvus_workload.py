"""Standalone Milvus workload (pymilvus + numpy only), run under different milvus-lite versions by
`python -m visitlens_dev.bench --only milvus-lite`: our schema (tenant partition key), batch inserts,
tenant-filtered and unfiltered top-10 search. Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback

import numpy as np
from pymilvus import DataType, MilvusClient


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=16, help="partition-key partitions")
    args = parser.parse_args()
    import pymilvus

    out: dict[str, object] = {
        "pymilvus": pymilvus.__version__,
        "n": args.n,
        "dim": args.dim,
        "tenants": args.tenants,
        "partitions": args.partitions,
    }
    try:
        import milvus_lite  # type: ignore[import-not-found]

        out["milvus_lite"] = getattr(milvus_lite, "__version__", "?")
    except ImportError:
        out["milvus_lite"] = "?"
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.n, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    client = MilvusClient(uri=args.uri)
    name = "workload"
    if client.has_collection(name):
        client.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("view_id", DataType.VARCHAR, is_primary=True, max_length=36)
    schema.add_field("tenant_id", DataType.VARCHAR, max_length=36, is_partition_key=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=args.dim)
    for index_type, build in (("HNSW", {"M": 16, "efConstruction": 200}), ("FLAT", {})):
        index = MilvusClient.prepare_index_params()
        index.add_index("embedding", index_type=index_type, metric_type="IP", params=build)
        try:
            client.create_collection(
                name, schema=schema, index_params=index, num_partitions=args.partitions
            )
        except Exception as exc:
            out[f"{index_type}_refused"] = str(exc)[:200]
            if client.has_collection(name):
                client.drop_collection(name)
            continue
        out["index"] = index_type
        break
    started = time.perf_counter()
    for lo in range(0, args.n, 1000):
        rows = [
            {
                "view_id": f"v{i}",
                "tenant_id": f"t{i % args.tenants}",
                "embedding": vectors[i].tolist(),
            }
            for i in range(lo, min(lo + 1000, args.n))
        ]
        client.insert(name, rows)
    out["insert_per_s"] = round(args.n / (time.perf_counter() - started), 1)
    started = time.perf_counter()
    client.flush(name)  # seal the growing segment so the index is built and used
    out["flush_s"] = round(time.perf_counter() - started, 2)
    params = {"metric_type": "IP", "params": {"ef": 64} if out.get("index") == "HNSW" else {}}
    for label, expression in (("tenant_filtered", 'tenant_id == "t3"'), ("unfiltered", "")):
        samples: list[float] = []
        leaks = 0
        try:
            for _ in range(args.queries):
                query = vectors[rng.integers(args.n)].tolist()
                t0 = time.perf_counter()
                hits = client.search(
                    name,
                    data=[query],
                    filter=expression,
                    limit=10,
                    output_fields=["tenant_id"],
                    search_params=params,
                )
                samples.append((time.perf_counter() - t0) * 1000)
                if expression:
                    leaks += sum(1 for h in hits[0] if h["entity"]["tenant_id"] != "t3")
            out[label] = {
                "p50_ms": round(statistics.median(samples), 3),
                "p95_ms": pct(samples, 95),
                "foreign_hits": leaks,
            }
        except Exception as exc:
            out[label] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            traceback.print_exc(file=sys.stderr)
    client.close()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
