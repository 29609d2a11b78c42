"""The musts' table: per input of the real corpus, what the row says and what came back (default flags and
--lossless), from the jobs' own outputs under ROOT (arc, wds, png, audit; ll-arc, ll-wds, ll-png, ll-audit)."""
import io, sys, tarfile, json
from pathlib import Path
import pyarrow.parquet as pq
from PIL import Image

root = Path(sys.argv[1])

def rows(d):
    out = {}
    for r in pq.read_table(next((root / d).glob("*.parquet"))).to_pylist():
        k = r["key"] if r["key"] not in out else r["key"] + "~2"
        out[k] = r
    return out

def tar(d):
    out = {}
    with tarfile.open(next((root / d).glob("*.tar"))) as t:
        for m in t.getmembers():
            k, e = m.name.split(".", 1); out.setdefault(k, {})[e] = t.extractfile(m).read()
    return out

def audit(d):
    out = {}
    for r in pq.read_table(root / d / "audit.parquet").to_pylist():
        out[r["key"] if r["key"] not in out else r["key"] + "~2"] = r
    return out

def fmt(b):
    try:
        return Image.open(io.BytesIO(b)).format
    except Exception:
        return "?"

given = {}
with tarfile.open(root / "corpus" / "real-000000.tar") as t:
    cur = None
    for m in t.getmembers():
        k, e = m.name.split(".", 1)
        if cur is None or cur[0] != k or e in given[cur[1]]:
            name = k if k not in given else k + "~2"
            given[name] = {}; cur = (k, name)
        given[cur[1]][e] = t.extractfile(m).read()
pngdir = {p.name for p in next(p for p in (root / "png").iterdir() if p.is_dir()).iterdir()}
lines = ["| input | default: row (stored_as, because) | default: came back (WebDataset; --format png) | audit | --lossless: row | --lossless: came back | audit | notes |",
         "|---|---|---|---|---|---|---|---|"]
R, T, A = rows("arc"), tar("wds"), audit("audit")
LR, LT, LA = rows("ll-arc"), tar("ll-wds"), audit("ll-audit")
lost = 0
for key, members in given.items():
    img = next((e for e in members if e != "json"), None)
    r, lr = R[key], LR[key]
    def back(t, a):
        if img is None or key not in t:
            return "members as they were" if key in t and all(t[key].get(e) == d for e, d in members.items()) else "MISSING"
        side = all(t[key].get(e) == d for e, d in members.items() if e != img)
        same = t[key].get(img) == members[img]
        desc = "byte for byte" if same else f"{fmt(t[key].get(img, b''))} under .{img}"
        return desc + ("" if side else ", SIDECAR LOST")
    def aud(a):
        x = a.get(key)
        if not x: return "-"
        if x["error"]: return "ERROR " + x["error"][:40]
        s = "exact" if x["exact"] else f"PSNR {x['psnr']:.1f}"
        return s + (f", alpha err {x['alpha_max_error']}" if x["alpha_max_error"] is not None else "")
    png_names = sorted(n[len(key) + 1:] for n in pngdir if n.startswith(key + ".") and "/" not in n[len(key) + 1:])
    for t in (T, LT):
        if key not in t: lost += 1
    notes = "; ".join((r["notes"] or []) + [n for n in (lr["notes"] or []) if n not in (r["notes"] or [])])
    lines.append(f"| {key} ({img or 'no image'}) | {r['stored_as']} ({r['stored_because']}) | {back(T, A)}; png: {', '.join(png_names)} | {aud(A)} "
                 f"| {lr['stored_as']} ({lr['stored_because']}) | {back(LT, LA)} | {aud(LA)} | {notes} |")
print("\n".join(lines))
print(f"\n{len(given)} samples; missing from an output: {lost}; default audit errors: {sum(bool(a['error']) for a in A.values())}; "
      f"--lossless audit not exact: {sum(not a['exact'] for a in LA.values() if a['stored_as'] not in ('none', None))}")
