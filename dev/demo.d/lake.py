#!/usr/bin/env python3
"""Reads a StreamLake raw zone for dev/demo: a local directory (file://) or a bucket on the GCS emulator (gs://).

Only what `_metadata.json` lists is part of the dataset, so every question is answered from the listed files:
which records of this demo run landed, how often, in which files, and whether any (partition, offset) is
listed twice or a listed file is missing or has another checksum.

  lake.py expect  ZONE DATASET KEYS_FILE [--wait S]   every key of KEYS_FILE landed exactly once (exit 1 if not)
  lake.py files   ZONE DATASET KEYS_FILE               the data files holding those keys, with their rows
  lake.py metadata ZONE DATASET DATE [FILE...]          an excerpt of a day's _metadata.json
  lake.py coverage ZONE DATASET DATE [KEYS_FILE]        the (partition, offset) pairs a day covers, as JSON
  lake.py json FILE EXPR                                evaluate a Python expression over a JSON file (`d`)
"""

import argparse
import collections
import gzip
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class LocalZone:
    def __init__(self, root):
        self.root = root

    def list(self, prefix):
        base = os.path.join(self.root, prefix)
        out = []
        for folder, _, names in os.walk(base):
            for name in names:
                out.append(os.path.relpath(os.path.join(folder, name), self.root))
        return sorted(out)

    def read(self, name):
        try:
            with open(os.path.join(self.root, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None


class GcsZone:
    """The GCS JSON API of the emulator: list by prefix, download with alt=media."""

    def __init__(self, endpoint, bucket, prefix):
        self.endpoint, self.bucket, self.prefix = endpoint.rstrip("/"), bucket, prefix.strip("/")

    def _key(self, name):
        return f"{self.prefix}/{name}" if self.prefix else name

    def list(self, prefix):
        out, token = [], None
        while True:
            query = {"prefix": self._key(prefix)}
            if token:
                query["pageToken"] = token
            url = f"{self.endpoint}/storage/v1/b/{self.bucket}/o?{urllib.parse.urlencode(query)}"
            with urllib.request.urlopen(url, timeout=10) as r:
                page = json.load(r)
            for item in page.get("items", []):
                name = item["name"]
                out.append(name[len(self.prefix) + 1 :] if self.prefix else name)
            token = page.get("nextPageToken")
            if not token:
                return sorted(out)

    def read(self, name):
        quoted = urllib.parse.quote(self._key(name), safe="")
        url = f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{quoted}?alt=media"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


def open_zone(zone):
    if zone.startswith("file://"):
        return LocalZone(zone[len("file://") :])
    if zone.startswith("gs://"):
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or sys.exit("gs:// needs STORAGE_EMULATOR_HOST")
        bucket, _, prefix = zone[len("gs://") :].partition("/")
        return GcsZone(endpoint, bucket, prefix)
    return LocalZone(zone)


def rows_of(name, data):
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    elif not name.endswith(".jsonl"):
        raise ValueError(f"{name}: only jsonl and jsonl.gz files are read here")
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _crc32c_table():
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ 0x82F63B78 if n & 1 else n >> 1  # CRC-32C (Castagnoli), reflected
        table.append(n)
    return table


_CRC32C = _crc32c_table()


def checksum_as_listed(listed, data):
    """`data`'s checksum in the algorithm of `listed`: `crc32c:<8 hex>`, or `sha256:` from earlier writers."""
    if listed.startswith("sha256:"):
        return "sha256:" + hashlib.sha256(data).hexdigest()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return f"crc32c:{crc ^ 0xFFFFFFFF:08x}"


def scan(zone, dataset):
    """Every listed file of every day: rows, problems, duplicates (over the whole dataset)."""
    store = open_zone(zone)
    days, problems = {}, []
    seen = collections.Counter()
    for name in store.list(f"raw/dataset={dataset}/"):
        if not name.endswith("/_metadata.json"):
            continue
        day_dir = name[: -len("/_metadata.json")]
        text = store.read(name)
        if text is None:  # deleted between list and read
            continue
        meta = json.loads(text)
        files = []
        for entry in meta["files"]:
            data = store.read(f"{day_dir}/{entry['path']}")
            if data is None:
                problems.append(f"listed file missing: {day_dir}/{entry['path']}")
                continue
            if checksum_as_listed(entry["checksum"], data) != entry["checksum"]:
                problems.append(f"checksum differs: {day_dir}/{entry['path']}")
            rows = rows_of(entry["path"], data)
            for row in rows:
                seen[(row["_partition"], row["_offset"])] += 1
            files.append({"entry": entry, "rows": rows})
        days[meta["ingestion_date"]] = {"dir": day_dir, "meta": meta, "files": files}
    duplicates = sorted(k for k, n in seen.items() if n > 1)
    return days, problems, duplicates


def expect(args):
    keys = [k for k in open(args.keys).read().split() if k]
    deadline = time.monotonic() + args.wait
    while True:
        try:
            days, problems, duplicates = scan(args.zone, args.dataset)
            err = None
        except (OSError, ValueError, urllib.error.URLError) as e:
            days, problems, duplicates, err = {}, [], [], str(e)
        counts = collections.Counter(
            row.get("_key") for day in days.values() for f in day["files"] for row in f["rows"]
        )
        missing = [k for k in keys if counts[k] == 0]
        doubled = [k for k in keys if counts[k] > 1]
        ok = not err and not missing and not doubled and not problems and not duplicates
        if ok or time.monotonic() >= deadline:
            break
        time.sleep(1)
    landed = sum(1 for k in keys if counts[k] >= 1)
    print(f"{landed}/{len(keys)} records of this run listed in _metadata.json; "
          f"{len(doubled)} landed more than once; {len(duplicates)} (partition, offset) listed twice "
          f"in the whole dataset; {len(problems)} listed files missing or altered")
    for what, items in (("error", [err] if err else []), ("missing", missing), ("more than once", doubled),
                        ("offset listed twice", duplicates), ("problem", problems)):
        for item in items[:5]:
            print(f"  {what}: {item}")
    return 0 if ok else 1


def files(args):
    keys = set(open(args.keys).read().split())
    days, _, _ = scan(args.zone, args.dataset)
    for day in days.values():
        for f in day["files"]:
            mine = [r for r in f["rows"] if r.get("_key") in keys]
            if mine:
                e = f["entry"]
                print(f"{day['dir']}/{e['path']}  ({e['record_count']} rows, {e['bytes']} bytes, "
                      f"partition {e['partition']} offsets {e['first_offset']}..={e['last_offset']})")
                for r in mine[:2]:
                    print(f"    row: _partition={r['_partition']} _offset={r['_offset']} _key={r['_key']} "
                          f"amount={r.get('amount')} {r.get('currency')}")
    return 0


def metadata(args):
    store = open_zone(args.zone)
    text = store.read(f"raw/dataset={args.dataset}/ingestion_date={args.date}/_metadata.json")
    if text is None:
        print("(no _metadata.json)")
        return 1
    meta = json.loads(text)
    head = {k: meta[k] for k in ("format_version", "dataset", "ingestion_date", "revision", "updated_at")}
    shown = [e for e in meta["files"] if not args.files or e["path"] in args.files]
    dlq = meta.get("dlq", [])
    excerpt = dict(head, files=shown[:1], dlq=dlq[-1:])
    print(json.dumps(excerpt, indent=2))
    print(f"(excerpt: {len(excerpt['files'])} of {len(meta['files'])} file entries, "
          f"{len(excerpt['dlq'])} of {len(dlq)} dlq entries)")
    return 0


def coverage(args):
    days, problems, duplicates = scan(args.zone, args.dataset)
    day = days.get(args.date)
    pairs = []
    if day:
        pairs = [[r["_partition"], r["_offset"]] for f in day["files"] for r in f["rows"]]
        pairs += [[d["partition"], d["offset"]] for d in day["meta"].get("dlq", [])]
    keys = set(open(args.keys).read().split()) if args.keys else set()
    mine = sorted(
        json.dumps(r, sort_keys=True)
        for f in (day["files"] if day else [])
        for r in f["rows"]
        if r.get("_key") in keys
    )
    digest = hashlib.sha256("\n".join(mine).encode()).hexdigest()
    print(json.dumps({"pairs": sorted(pairs), "files": len(day["files"]) if day else 0, "mine": len(mine),
                      "mine_sha256": digest, "problems": problems, "duplicates": duplicates}))
    return 0


def json_expr(args):
    with open(args.file) as f:
        d = json.load(f)
    value = eval(args.expr, {"d": d, "json": json, "sys": sys})  # the demo's own expressions over its own files
    print(value if isinstance(value, str) else json.dumps(value))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("expect")
    p.add_argument("zone"), p.add_argument("dataset"), p.add_argument("keys")
    p.add_argument("--wait", type=float, default=0)
    p.set_defaults(run=expect)
    p = sub.add_parser("files")
    p.add_argument("zone"), p.add_argument("dataset"), p.add_argument("keys")
    p.set_defaults(run=files)
    p = sub.add_parser("metadata")
    p.add_argument("zone"), p.add_argument("dataset"), p.add_argument("date"), p.add_argument("files", nargs="*")
    p.set_defaults(run=metadata)
    p = sub.add_parser("coverage")
    p.add_argument("zone"), p.add_argument("dataset"), p.add_argument("date"), p.add_argument("keys", nargs="?")
    p.set_defaults(run=coverage)
    p = sub.add_parser("json")
    p.add_argument("file"), p.add_argument("expr")
    p.set_defaults(run=json_expr)
    args = parser.parse_args()
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
