#!/usr/bin/env python3
"""ocidiff.py [--volatile PATH=REASON]... BUILDAH_LAYOUT MYBUILD_LAYOUT
-- compare two OCI image layouts.

Compares the image config (Env, Cmd, Entrypoint, WorkingDir, User,
ExposedPorts, Volumes, Labels, StopSignal), the file tree of each layer
(path, type, mode, uid/gid, size, link target; whiteouts and opaque markers
counted) and the final filesystem (layers applied in order, whiteouts
honoured). Differences that come from Buildah deviating from Docker/BuildKit
(see bench/README.md) are printed as EXPECTED with the reason; anything else
as DIFF. Exit status 1 when there is a DIFF.

The first layout is the reference builder (Buildah), the second mybuild.
--volatile PATH=REASON: a file whose content differs between any two builds
(a RUN output with timestamps in it): a size difference there is EXPECTED.
"""

import json
import os
import sys
import tarfile

CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User",
                 "ExposedPorts", "Volumes", "Labels", "StopSignal"]
# Files Buildah bind-mounts into RUN steps; it leaves empty placeholders (and
# a run/ dir) in RUN layers when the base lacks them.
RESIDUE = {"etc/hostname", "etc/hosts", "etc/resolv.conf", "run"}
OPQ = ".wh..wh..opq"

R_RESIDUE = "Buildah mount-point residue (empty placeholder of a file it bind-mounts into RUN)"
R_RESIDUE_PARENT = "parent dir of Buildah mount-point residue"
R_OPQ = "Buildah writes an opaque marker where BuildKit writes one whiteout per removed entry"
R_WH_MODE = "whiteout metadata: BuildKit whiteouts are mode 0 / root, Buildah's carry other bits"
R_WORKDIR = "BuildKit/mybuild commit WORKDIR's directory as its own layer; Buildah puts it in the next layer"
R_HARDLINK = "hardlink to a lower-layer file: Buildah writes a hardlink entry, BuildKit/mybuild a full copy"
R_COPIED_UP = ("a file overlay only copied up (ln, chown/chmod to the same, touch -a): Buildah writes it again, "
               "BuildKit/mybuild leave it out")
R_LABEL = "Buildah adds its io.buildah.version label"
R_ENV_ORDER = "Env order: Buildah moves a redefined variable to the end, Docker/BuildKit replace it in place (same variables)"
R_WORKDIR_OWNER = ("WORKDIR dir owner: Docker/BuildKit create WORKDIR's dirs as the current USER at WORKDIR; "
                   "Buildah creates them later, e.g. with the owner of a COPY --chown into it")


def blob(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def load_json(layout, digest):
    with open(blob(layout, digest)) as f:
        return json.load(f)


def load_image(layout):
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    man = load_json(layout, idx["manifests"][0]["digest"])
    if "manifests" in man:  # an index: take linux/amd64 or the first
        ms = [m for m in man["manifests"] if m.get("platform", {}).get("architecture") == "amd64"] + man["manifests"]
        man = load_json(layout, ms[0]["digest"])
    cfg = load_json(layout, man["config"]["digest"])
    layers = [read_layer(blob(layout, l["digest"])) for l in man["layers"]]
    hist = [h for h in cfg.get("history", []) if not h.get("empty_layer")]
    if len(hist) != len(layers):
        hist = [{}] * len(layers)
    return cfg, layers, [h.get("created_by", "") for h in hist]


def norm(name):
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return name or "/"


def read_layer(path):
    """Return {path: (type, mode, uid, gid, size, link)} in tar order."""
    entries = {}
    with tarfile.open(path, "r:*") as tf:
        for ti in tf:
            p = norm(ti.name)
            if ti.isreg():
                t, size, link = "file", ti.size, ""
            elif ti.isdir():
                t, size, link = "dir", 0, ""
            elif ti.issym():
                t, size, link = "symlink", 0, ti.linkname
            elif ti.islnk():
                t, size, link = "hardlink", 0, norm(ti.linkname)
            elif ti.ischr():
                t, size, link = "char", 0, "%d:%d" % (ti.devmajor, ti.devminor)
            elif ti.isblk():
                t, size, link = "block", 0, "%d:%d" % (ti.devmajor, ti.devminor)
            elif ti.isfifo():
                t, size, link = "fifo", 0, ""
            else:
                t, size, link = "type%s" % ti.type, 0, ""
            entries[p] = (t, ti.mode & 0o7777, ti.uid, ti.gid, size, link)
    return entries


def fmt(e):
    if e is None:
        return "absent"
    t, mode, uid, gid, size, link = e
    s = "%s %04o %d:%d" % (t, mode, uid, gid)
    if t == "file":
        s += " %dB" % size
    if link:
        s += " -> " + link
    return s


def base(p):
    return p.rsplit("/", 1)[-1]


def parent(p):
    return p.rsplit("/", 1)[0] if "/" in p else "/"


def is_wh(p):
    return base(p).startswith(".wh.")


def apply(tree, layer):
    """Apply one layer to a final-tree dict (OCI image-spec semantics)."""
    for p, e in layer.items():
        b = base(p)
        if b == OPQ:
            d = parent(p)
            for q in [q for q in tree if q.startswith(d + "/")]:
                del tree[q]
        elif b.startswith(".wh."):
            victim = (parent(p) + "/" if "/" in p else "") + b[4:]
            for q in [q for q in tree if q == victim or q.startswith(victim + "/")]:
                del tree[q]
    for p, e in layer.items():
        if is_wh(p):
            continue
        if e[0] == "hardlink":  # a hardlink shares the target's inode
            tgt = tree.get(e[5]) or layer.get(e[5])
            e = tgt if tgt else e
        if e[0] != "dir" and p in tree and tree[p][0] == "dir":
            for q in [q for q in tree if q.startswith(p + "/")]:
                del tree[q]
        tree[p] = e


def is_residue(p, e):
    return p in RESIDUE and e is not None and (e[0] == "dir" or e[4] == 0)


def unchanged_copy(p, e, layer, below):
    """Whether e, the entry p of layer (a hardlink taken as its target
    there), is a file the tree below the layer already has as it is."""
    if e[0] == "dir" or is_wh(p):
        return False
    if e[0] == "hardlink":
        e = layer.get(e[5])
    return e is not None and below.get(p) == e


def compare_entries(b, m, out, ctx):
    """Compare two {path: entry} maps; ctx holds per-layer allowances."""
    opq_dirs = {parent(p) for p in b if base(p) == OPQ}
    residue_parents = {parent(p) for p in b if is_residue(p, b[p]) and p not in m}
    workdir_paths = ctx.get("workdir_paths", set())
    for p in sorted(set(b) | set(m)):
        eb, em = b.get(p), m.get(p)
        if eb == em:
            continue
        reason = None
        if em is None and is_residue(p, eb):
            reason = R_RESIDUE
        elif em is None and eb[0] == "dir" and any(r == p or r.startswith(p + "/") for r in residue_parents):
            reason = R_RESIDUE_PARENT
        elif base(p) == OPQ and em is None:
            reason = R_OPQ
        elif eb is None and is_wh(p) and any(p.startswith(d + "/") for d in opq_dirs):
            reason = R_OPQ
        elif eb is not None and em is not None and is_wh(p) and eb[0] == em[0]:
            reason = R_WH_MODE
        elif em is None and p in workdir_paths and eb[0] == "dir":
            reason = R_WORKDIR
        elif (eb is not None and em is not None and p in workdir_paths and eb[0] == em[0] == "dir"
              and eb[1] == em[1] and eb[2:4] != em[2:4]):
            reason = R_WORKDIR_OWNER
        elif eb is not None and em is not None and eb[0] == "hardlink" and em[0] == "file" and ctx.get("layer"):
            reason = R_HARDLINK
        elif em is None and ctx.get("layer") and unchanged_copy(p, eb, b, ctx.get("below", {})):
            reason = R_COPIED_UP
        elif eb is not None and em is not None and eb[:4] == em[:4] and eb[0] == "dir":
            reason = None  # same dir, different size field: not a difference
            continue
        if reason is None and p in ctx.get("volatile", {}) and eb and em and eb[:4] == em[:4]:
            reason = ctx["volatile"][p]
        out.append((reason, "%s: buildah %s | mybuild %s" % (p, fmt(eb), fmt(em))))


def counts(layer):
    wh = sum(1 for p in layer if is_wh(p) and base(p) != OPQ)
    opq = sum(1 for p in layer if base(p) == OPQ)
    return "%d entries, %d whiteouts, %d opaque" % (len(layer), wh, opq)


def main():
    args, volatile = sys.argv[1:], {}
    while args and args[0] == "--volatile":  # --volatile PATH=REASON
        p, _, r = args[1].partition("=")
        volatile[norm(p)] = "content not reproducible: " + r
        args = args[2:]
    if len(args) != 2:
        sys.exit(__doc__)
    bl, ml = args
    bcfg, blayers, bhist = load_image(bl)
    mcfg, mlayers, mhist = load_image(ml)
    diffs = 0

    def report(section, items):
        nonlocal diffs
        for reason, text in items:
            if reason:
                print("  EXPECTED %s %s  [%s]" % (section, text, reason))
            else:
                diffs += 1
                print("  DIFF     %s %s" % (section, text))

    # ---- config
    items = []
    bc, mc = bcfg.get("config") or {}, mcfg.get("config") or {}
    for k in CONFIG_FIELDS:
        vb, vm = bc.get(k) or None, mc.get(k) or None
        if k == "Labels" and vb:
            extra = {x: vb[x] for x in vb if x == "io.buildah.version" and x not in (vm or {})}
            if extra:
                items.append((R_LABEL, "Labels: buildah has %s" % json.dumps(extra)))
                vb = {x: y for x, y in vb.items() if x not in extra} or None
        if k == "Env" and vb != vm and vb and vm and sorted(vb) == sorted(vm):
            items.append((R_ENV_ORDER, "Env: buildah %s | mybuild %s" % (json.dumps(vb), json.dumps(vm))))
            continue
        if vb != vm:
            items.append((None, "%s: buildah %s | mybuild %s" % (k, json.dumps(vb), json.dumps(vm))))
    report("config", items)

    # ---- layers: drop mybuild's WORKDIR-only layers, then pair in order
    workdir_paths, keep = set(), []
    for i, (layer, h) in enumerate(zip(mlayers, mhist)):
        if h.startswith("WORKDIR") and len(blayers) < len(mlayers):
            workdir_paths |= set(layer)
            print("  EXPECTED layer mybuild#%d %r (%s) has no Buildah counterpart  [%s]" % (i, h, counts(layer), R_WORKDIR))
            continue
        keep.append(i)
    if len(keep) != len(blayers):
        diffs += 1
        print("  DIFF     layers: buildah %d, mybuild %d (after WORKDIR layers)" % (len(blayers), len(keep)))
    below = {}  # Buildah's tree under the layer compared
    for bi, mi in zip(range(len(blayers)), keep):
        items = []
        compare_entries(blayers[bi], mlayers[mi], items,
                        {"workdir_paths": workdir_paths, "layer": True, "volatile": volatile, "below": below})
        apply(below, blayers[bi])
        status = "same" if not items else ("expected diffs only" if all(r for r, _ in items) else "DIFFERS")
        print("  layer %d/%d %s: buildah %s | mybuild %s: %s" % (
            bi, mi, (mhist[mi] or bhist[bi])[:60], counts(blayers[bi]), counts(mlayers[mi]), status))
        report("layer %d:" % bi, items)

    # ---- final filesystem
    bt, mt = {}, {}
    for layer in blayers:
        apply(bt, layer)
    for layer in mlayers:
        apply(mt, layer)
    items = []
    compare_entries(bt, mt, items, {"workdir_paths": workdir_paths, "layer": False, "volatile": volatile})
    print("  final tree: buildah %d entries, mybuild %d entries: %s" % (
        len(bt), len(mt), "same" if not items else ("expected diffs only" if all(r for r, _ in items) else "DIFFERS")))
    report("final:", items)
    print("  => %d unexpected difference(s)" % diffs)
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
