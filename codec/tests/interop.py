"""Plain-Python side of the interop test: only the standard library, as docs/layout.md#python-interoperability says.

usage: interop.py DIR
  reads  DIR/rust.batch (written by the codec) and DIR/expected.jsonl (the same items, one
         per line), checks json.loads(zlib.decompress(body)) equals them;
  writes DIR/python-*.batch, batches made with zlib.compress(json.dumps(items)), for the
         codec to read back.
"""
import base64
import json
import sys
import zlib

d = sys.argv[1]
expected = [json.loads(line) for line in open(f"{d}/expected.jsonl", encoding="utf-8")]
with open(f"{d}/rust.batch", "rb") as f:
    items = json.loads(zlib.decompress(f.read()))
assert isinstance(items, list), type(items)
assert items == expected, "the codec's batch differs from the expected items"


def check(value):
    (tag, v), = value.items()
    if tag in ("B",):
        base64.b64decode(v, validate=True)
    elif tag == "BS":
        for b in v:
            base64.b64decode(b, validate=True)
    elif tag == "M":
        for x in v.values():
            check(x)
    elif tag == "L":
        for x in v:
            check(x)
    elif tag == "N":
        float(v)


for item in items:
    for value in item.values():
        check(value)

# The inverse one-liner, in the ways Python users write it.
with open(f"{d}/python-default.batch", "wb") as f:
    f.write(zlib.compress(json.dumps(expected).encode()))
with open(f"{d}/python-unicode-indent.batch", "wb") as f:
    f.write(zlib.compress(json.dumps(expected, ensure_ascii=False, indent=2).encode("utf-8"), 9))
with open(f"{d}/python-level1.batch", "wb") as f:
    f.write(zlib.compress(json.dumps(expected, separators=(",", ":")).encode(), 1))
print(f"python read {len(items)} items and wrote 3 batches")
