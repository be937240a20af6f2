"""The bigbench 1.0.0 sdist on PyPI, from which the example suites' data (and the forgetting check's questions)
are cut: fetched with `pip download --no-deps` (never installed), checked against its published sha256, its
members read without extracting it, and the command line every build script shares (--sdist, --out-dir, --seed).

In the package rather than beside a suite so that a suite copied by `harness init --template` can still rebuild
its data.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "bigbench"
VERSION = "1.0.0"
SDIST_FILENAME = f"{PACKAGE}-{VERSION}.tar.gz"
# sha256 of bigbench-1.0.0.tar.gz as the package index lists it.
SDIST_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
# Recent pip (seen with 26.3) prepares the sdist's metadata even with --no-deps and then rejects it,
# because bigbench declares a direct-URL dependency (bleurt @ file://...). pip 23.2.1 saves the file
# fine, so when the installed pip fails we run that pip straight from its wheel.
FALLBACK_PIP = "pip==23.2.1"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checked_sha256(sdist: Path) -> str:
    """The sdist's sha256, after checking it is the file published on PyPI (exit with a message otherwise)."""
    sha = sha256_file(sdist)
    if sha != SDIST_SHA256:
        sys.exit(f"error: sha256 of {sdist} is {sha}, expected {SDIST_SHA256} (the {SDIST_FILENAME} published on PyPI)")
    return sha


def _pip_download(pip: list[str], dest: Path) -> Path | None:
    cmd = [*pip, "download", f"{PACKAGE}=={VERSION}", "--no-deps", "-d", str(dest)]
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, stdout=sys.stderr)
    path = dest / SDIST_FILENAME
    return path if path.is_file() else None


def download_sdist(dest: Path) -> Path:
    """Download the bigbench sdist into `dest` (no install, no dependencies).

    Tries the installed pip first; if it fails without saving the file, runs pip 23.2.1 from its wheel
    (a pip wheel runs as `python pip-X.whl/pip`). Either way `build` checks the sha256.
    """
    path = _pip_download([sys.executable, "-m", "pip"], dest)
    if path:
        return path
    wheels = dest / "pip-wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", FALLBACK_PIP, "--no-deps", "-d", str(wheels)],
        stdout=sys.stderr,
        check=True,
    )
    wheel = next(wheels.glob("pip-*.whl"))
    path = _pip_download([sys.executable, str(wheel / "pip")], dest)
    if not path:
        sys.exit(f"error: could not download {SDIST_FILENAME}; download it by hand and pass --sdist PATH")
    return path


def read_member(sdist: Path, name: str) -> bytes:
    """The raw bytes of one member of the sdist, read without extracting it."""
    with tarfile.open(sdist, "r:gz") as tar:
        try:
            member = tar.getmember(name)
        except KeyError:
            sys.exit(f"error: {name} not found in {sdist}")
        handle = tar.extractfile(member)
        if handle is None:
            sys.exit(f"error: {name} in {sdist} is not a regular file")
        return handle.read()


def run_cli(build, doc: str, out_dir: Path, seed: int, seed_help: str, argv: list[str] | None = None) -> None:
    """The command line the suites' build scripts share: --sdist, --out-dir, --seed; downloads the sdist if needed."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--sdist",
        type=Path,
        help=f"path to an already downloaded {SDIST_FILENAME} "
        "(default: download it with pip into a temporary directory)",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=out_dir, help="where to write the data files (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=seed, help=f"{seed_help} (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.sdist is not None:
        if not args.sdist.is_file():
            parser.error(f"--sdist: no such file: {args.sdist}")
        build(args.sdist, args.out_dir, args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="bigbench-sdist-") as tmp:
            build(download_sdist(Path(tmp)), args.out_dir, args.seed)
