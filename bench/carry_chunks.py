"""Carry the GPU comparison's inputs to the device machine in staged calls.

The device tool carries at most 64 MiB per call (the working tree
included), and the inputs of bench/gpu_quality.sh are bigger: the CIFAR-10
JPEG zip (62 MB) and the FID Inception weights (87 MB). `split` (here, on
the machine holding ../shared/data) checks both against the sha256 their
READMEs give and makes two smaller payloads that restore byte for byte:

- `cifar10_train.zip`: the 50,000 `train/` members only, the JPEG bytes
  as they are, stored (the test split is never used; 62 -> 52 MB);
- the Inception .npz with its bytes regrouped by position in each 4-byte
  word and deflated: float32 exponents compress, mantissas do not
  (87 -> 74 MB); `stage` restores the original file and checks its sha256.

It cuts their concatenation into chunks that fit one call each beside the
working tree (the last call also carries .whl), under `.carry/<k>/`
(chunk-<k>.bin and the shared manifest.json), and prints the calls.
`stage` (there, inside each call) checks every carried chunk's sha256,
moves it to `.stage/chunks/` (ignored, so it stays on the machine while it
is warm), and once all are there rebuilds the inputs under
`.stage/inputs/`. Standard library only: it runs before anything is
installed.

python bench/carry_chunks.py split --zip ../shared/data/cifar10-jpeg/\
cifar10_jpeg.zip --inception ../shared/data/fid-inception-2015-12-05/\
fid_inception_2015_12_05.npz
python3 bench/carry_chunks.py stage            # in each device call
python3 bench/carry_chunks.py stage --require-all   # in the last one
"""

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
import zlib

MIB = 1 << 20
# The inputs as ../shared/data's READMEs list them.
ZIP_NAME = "cifar10_jpeg.zip"
ZIP_SHA256 = "ead45e06542622104d3e17a0e554f18656c4cf310408a9ee502d835a28cf897d"
NPZ_NAME = "fid_inception_2015_12_05.npz"
NPZ_SHA256 = "20cf78f364626e2cb31f49e513611106c1521836575c97926430585660bba48c"
TRAIN_ZIP = "cifar10_train.zip"
PACKED_NPZ = NPZ_NAME + ".shuf4.zlib"
STAGE_CMD = "STAGE=only bash bench/gpu_quality.sh"
RUN_CMD = "bash bench/gpu_quality.sh"


class Error(Exception):
    """A one-line message for the user; the exit status is 2."""


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def check_input(path, want, name):
    """The file at `path`, or an Error if it is missing or not the one the
    README describes."""
    if not os.path.isfile(path):
        raise Error(f"{name} not found at '{path}'")
    got = sha256_file(path)
    if got != want:
        raise Error(
            f"'{path}' has sha256 {got[:16]}..., not the {name} its README "
            f"lists ({want[:16]}...); use the file from ../shared/data"
        )


def shuffle4(data):
    """Byte k of every 4-byte word, for k = 0..3, then the tail."""
    n = len(data) // 4 * 4
    return b"".join(data[k:n:4] for k in range(4)) + data[n:]


def unshuffle4(data):
    """The inverse of `shuffle4`."""
    n = len(data) // 4 * 4
    q = n // 4
    out = bytearray(len(data))
    for k in range(4):
        out[k:n:4] = data[k * q : (k + 1) * q]
    out[n:] = data[n:]
    return bytes(out)


def train_zip(src, dst):
    """Write the `train/` members of `src` to `dst`, stored, with fixed
    timestamps, so the same input always gives the same bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        names = sorted(
            m.filename
            for m in zin.infolist()
            if m.filename.startswith("train/") and not m.is_dir()
        )
        if not names:
            raise Error(f"'{src}' holds no train/ members")
        for name in names:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zout.writestr(info, zin.read(name))
    return len(names)


def tree_bytes(root):
    """Bytes of what every device call sends besides carried paths:
    tracked files and untracked files that git does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    total = 0
    for rel in out.split(b"\0"):
        path = os.path.join(root, os.fsdecode(rel)) if rel else None
        if path and os.path.isfile(path) and not os.path.islink(path):
            total += os.path.getsize(path)
    return total


def folder_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total


def plan_chunks(stream_size, capacity, last_extra):
    """Chunk sizes for as few calls as carry `capacity` bytes each, the
    last one's chunk and `last_extra` bytes (the wheels) together."""
    if capacity <= last_extra:
        raise Error(
            f"a call has room for {capacity / MIB:.1f} MiB, not even the "
            f"wheels ({last_extra / MIB:.1f} MiB); the working tree is too "
            "big"
        )
    calls_needed = 1
    while stream_size + last_extra > calls_needed * capacity:
        calls_needed += 1
    # The same load in every call, so each keeps the same room.
    per = -(-(stream_size + last_extra) // calls_needed)
    sizes = [per] * (calls_needed - 1)
    sizes.append(stream_size - sum(sizes))
    return sizes


def calls(manifest, carry_rel):
    """The device-tool calls, in order: (command, carry list)."""
    n = len(manifest["chunks"])
    out = []
    for c in manifest["chunks"]:
        carry = [f"{carry_rel}/{c['call']}"]
        if c["call"] == n:
            out.append((RUN_CMD, carry + [manifest["wheels"]]))
        else:
            out.append((STAGE_CMD, carry))
    return out


def write_carry(carry, payloads, stream, sizes, wheels):
    """Cut `stream` (the payloads, concatenated) into chunks of `sizes`,
    one folder `<carry>/<k>/` per call with its chunk and the manifest."""
    chunks, pos = [], 0
    for k, size in enumerate(sizes, 1):
        part = stream[pos : pos + size]
        pos += size
        chunks.append(
            dict(
                call=k,
                file=f"chunk-{k}.bin",
                size=size,
                sha256=sha256_bytes(part),
            )
        )
        os.makedirs(os.path.join(carry, str(k)))
        with open(os.path.join(carry, str(k), f"chunk-{k}.bin"), "wb") as f:
            f.write(part)
    manifest = dict(
        id=sha256_bytes(json.dumps(chunks, sort_keys=True).encode())[:16],
        payloads=payloads,
        chunks=chunks,
        wheels=wheels,
    )
    for k in range(1, len(chunks) + 1):
        with open(os.path.join(carry, str(k), "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
    return manifest


def cmd_split(args):
    root = os.path.abspath(args.root)
    carry = os.path.join(root, args.out)
    check_input(args.zip, ZIP_SHA256, ZIP_NAME)
    check_input(args.inception, NPZ_SHA256, NPZ_NAME)
    whl = os.path.join(root, args.wheels)
    if not glob.glob(os.path.join(whl, "*.whl")):
        print(
            f"note: no wheels in '{whl}': the last call works only where "
            "Keras and crc32c are installed (STAGE=split bash "
            "bench/gpu_quality.sh downloads them, except with TINY=1)"
        )
    if os.path.isdir(carry):
        shutil.rmtree(carry)
    os.makedirs(carry)
    tmp = os.path.join(carry, "train.tmp.zip")
    count = train_zip(args.zip, tmp)
    with open(tmp, "rb") as f:
        zip_bytes = f.read()
    os.remove(tmp)
    with open(args.inception, "rb") as f:
        npz = f.read()
    packed = zlib.compress(shuffle4(npz), 6)
    payloads = [
        dict(
            name=TRAIN_ZIP,
            size=len(zip_bytes),
            sha256=sha256_bytes(zip_bytes),
            restore="copy",
            images=count,
        ),
        dict(
            name=PACKED_NPZ,
            size=len(packed),
            sha256=sha256_bytes(packed),
            restore="unshuffle4-inflate",
            restored_name=NPZ_NAME,
            restored_size=len(npz),
            restored_sha256=NPZ_SHA256,
        ),
    ]
    stream = zip_bytes + packed
    tree = tree_bytes(root)
    wheels = folder_bytes(whl)
    capacity = int(args.limit_mib * MIB) - tree - int(args.margin_mib * MIB)
    sizes = plan_chunks(len(stream), capacity, wheels)
    manifest = write_carry(carry, payloads, stream, sizes, args.wheels)
    chunks = manifest["chunks"]
    print(
        f"split {len(stream) / MIB:.1f} MiB ({count} train JPEGs, Inception "
        f"packed {len(npz) / MIB:.1f} -> {len(packed) / MIB:.1f} MiB) into "
        f"{len(chunks)} chunk(s) under '{carry}'; working tree "
        f"{tree / MIB:.1f} MiB, wheels {wheels / MIB:.1f} MiB"
    )
    print("device calls, back to back (a machine goes back 30 s after one):")
    for k, (command, carry_list) in enumerate(calls(manifest, args.out), 1):
        print(f"  {k}. command: {command}  carry: {json.dumps(carry_list)}")
    return 0


def read_manifests(carry):
    found = {}
    for path in sorted(glob.glob(os.path.join(carry, "*", "manifest.json"))):
        with open(path) as f:
            m = json.load(f)
        found[m["id"]] = m
    if len(found) > 1:
        raise Error(
            f"'{carry}' holds chunks of {len(found)} different splits; run "
            "STAGE=split again and carry only its folders"
        )
    return next(iter(found.values()), None)


def restore(manifest, chunk_dir, inputs):
    """Join the chunks, check and unpack every payload into `inputs`."""
    parts = []
    for c in manifest["chunks"]:
        with open(os.path.join(chunk_dir, c["file"]), "rb") as f:
            parts.append(f.read())
    stream, pos = b"".join(parts), 0
    os.makedirs(inputs, exist_ok=True)
    for p in manifest["payloads"]:
        data = stream[pos : pos + p["size"]]
        pos += p["size"]
        if sha256_bytes(data) != p["sha256"]:
            raise Error(f"payload {p['name']} does not match its sha256")
        name = p["name"]
        if p["restore"] == "unshuffle4-inflate":
            data = unshuffle4(zlib.decompress(data))
            name = p["restored_name"]
            if sha256_bytes(data) != p["restored_sha256"]:
                raise Error(f"restored {name} does not match its sha256")
        tmp = os.path.join(inputs, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(inputs, name))


def missing_message(manifest, c, carry_rel):
    command, carry = calls(manifest, carry_rel)[c["call"] - 1]
    n = len(manifest["chunks"])
    return (
        f"chunk {c['call']} of {n} ({c['file']}, sha256 "
        f"{c['sha256'][:16]}...) is not on this machine: it comes with call "
        f"{c['call']} (command: {command}; carry: {json.dumps(carry)}); all "
        f"{n} calls must run on one warm machine, each within 30 s of the "
        "last: run them again from the first"
    )


def cmd_stage(args):
    root = os.path.abspath(args.root)
    carry = os.path.join(root, args.carry)
    stage = os.path.join(root, args.stage)
    chunk_dir = os.path.join(stage, "chunks")
    inputs = os.path.join(stage, "inputs")
    done_file = os.path.join(inputs, "restored.json")
    manifest = read_manifests(carry)
    staged_path = os.path.join(chunk_dir, "manifest.json")
    if manifest is None and os.path.isfile(staged_path):
        with open(staged_path) as f:
            manifest = json.load(f)
    if manifest is None:
        if os.path.isfile(done_file):
            print(f"inputs already restored in '{inputs}'")
            return 0
        raise Error(
            f"no chunks in '{carry}' and no staged inputs: make them with "
            "STAGE=split bash bench/gpu_quality.sh and carry .carry/<k>"
        )
    if os.path.isfile(done_file):
        with open(done_file) as f:
            if json.load(f).get("id") == manifest["id"]:
                print(f"inputs of split {manifest['id']} already restored")
                return 0
    if os.path.isfile(staged_path):
        with open(staged_path) as f:
            if json.load(f)["id"] != manifest["id"]:
                shutil.rmtree(chunk_dir)  # an older split's chunks
    os.makedirs(chunk_dir, exist_ok=True)
    with open(staged_path, "w") as f:
        json.dump(manifest, f)
    for c in manifest["chunks"]:
        src = os.path.join(carry, str(c["call"]), c["file"])
        if not os.path.isfile(src):
            continue
        if os.path.getsize(src) != c["size"] or sha256_file(src) != c["sha256"]:
            raise Error(
                f"carried chunk '{src}' does not match its sha256 in the "
                "manifest; run STAGE=split again"
            )
        shutil.move(src, os.path.join(chunk_dir, c["file"]))
        print(f"staged chunk {c['call']} of {len(manifest['chunks'])}")
    missing = [
        c
        for c in manifest["chunks"]
        if not os.path.isfile(os.path.join(chunk_dir, c["file"]))
    ]
    if missing:
        if args.require_all:
            raise Error(missing_message(manifest, missing[0], args.carry))
        nxt = missing[0]["call"]
        command, carry_list = calls(manifest, args.carry)[nxt - 1]
        print(
            f"{len(missing)} chunk(s) still to come; next, within 30 s: call "
            f"{nxt} (command: {command}; carry: {json.dumps(carry_list)})"
        )
        return 0
    restore(manifest, chunk_dir, inputs)
    shutil.rmtree(chunk_dir)
    with open(done_file, "w") as f:
        json.dump(dict(id=manifest["id"]), f)
    print(f"restored the inputs in '{inputs}' (sha256 checked)")
    return 0


def build_parser():
    p = argparse.ArgumentParser(
        prog="bench/carry_chunks.py",
        description="Split the GPU comparison's inputs into device-call "
        "chunks (here), or stage and restore them (on the device).",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        default=".",
        help="the repository root (default: %(default)s)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    s = sub.add_parser("split", help="make .carry/<k>/ from ../shared/data")
    s.add_argument("--zip", metavar="PATH", required=True, help=ZIP_NAME)
    s.add_argument("--inception", metavar="PATH", required=True, help=NPZ_NAME)
    s.add_argument(
        "--out",
        metavar="DIR",
        default=".carry",
        help="chunk folder, relative to --root (default: %(default)s)",
    )
    s.add_argument(
        "--wheels",
        metavar="DIR",
        default=".whl",
        help="wheels the last call carries, relative to --root "
        "(default: %(default)s)",
    )
    s.add_argument(
        "--limit-mib",
        metavar="MIB",
        type=float,
        default=64.0,
        help="what one call may carry, tree included (default: %(default)s)",
    )
    s.add_argument(
        "--margin-mib",
        metavar="MIB",
        type=float,
        default=1.0,
        help="room left in each call (default: %(default)s)",
    )
    t = sub.add_parser("stage", help="check, keep and restore carried chunks")
    t.add_argument(
        "--carry",
        metavar="DIR",
        default=".carry",
        help="carried chunk folder, relative to --root (default: %(default)s)",
    )
    t.add_argument(
        "--stage",
        metavar="DIR",
        default=".stage",
        help="where chunks and inputs stay, relative to --root (default: "
        "%(default)s)",
    )
    t.add_argument(
        "--require-all",
        action="store_true",
        help="fail, naming the call, if a chunk is missing (the last call)",
    )
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return cmd_split(args) if args.command == "split" else cmd_stage(args)
    except Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
