"""A PEP 517 backend for ``rthub-client`` written with the standard library only, so the
SDK builds offline (``pip install ./sdk/python``, ``pip wheel``) and no build tool has to
learn to package files from outside its project directory.

The wheel holds ``client/`` and the pure modules of ``rthub/`` the SDK imports
(``MODULES``); the metadata comes from ``pyproject.toml`` beside this file. An sdist
carries those same files under ``src/``, where a build from the sdist finds them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ("rthub/__init__.py", "rthub/playlist_ot.py", "rthub/event_catalog.py")
TAG = "py3-none-any"


def _project() -> dict:
    return tomllib.loads((HERE / "pyproject.toml").read_text())["project"]


def _root() -> Path:
    """Where the sources are: ``src/`` in an sdist, else the repository's root."""
    return HERE / "src" if (HERE / "src" / "client").is_dir() else HERE.parents[1]


def sources() -> dict[str, bytes]:
    """The files the SDK installs: {path in the wheel: content}."""
    root = _root()
    paths = sorted(p.relative_to(root).as_posix() for p in (root / "client").glob("*.py"))
    return {path: (root / path).read_bytes() for path in [*paths, *MODULES]}


def metadata() -> str:
    project = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}", f"Summary: {project['description']}",
             f"Requires-Python: {project['requires-python']}"]
    lines += [f"Requires-Dist: {dep}" for dep in project["dependencies"]]
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {dep}; extra == "{extra}"' for dep in deps]
    return "\n".join(lines) + "\n"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def write_wheel(directory: str | Path, name: str, version: str, tag: str,
                files: dict[str, bytes], dist_info: dict[str, bytes]) -> str:
    """A wheel of ``files`` with ``dist_info`` (METADATA, WHEEL...) and its RECORD; returns
    its file name."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    entries = {**files, **{f"{info}/{key}": value for key, value in dist_info.items()}}
    record = "".join(f"{path},{_digest(data)},{len(data)}\n" for path, data in entries.items())
    entries[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    filename = f"{stem}-{tag}.whl"
    with zipfile.ZipFile(Path(directory) / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in entries.items():
            wheel.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return filename


def _dist_info() -> dict[str, bytes]:
    wheel = f"Wheel-Version: 1.0\nGenerator: rthub build_backend\nRoot-Is-Purelib: true\n" \
            f"Tag: {TAG}\n"
    return {"METADATA": metadata().encode(), "WHEEL": wheel.encode()}


# -- PEP 517 hooks ----------------------------------------------------------------------
def get_requires_for_build_wheel(config_settings: dict | None = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: dict | None = None) -> list[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: dict | None = None,
                metadata_directory: str | None = None) -> str:
    project = _project()
    return write_wheel(wheel_directory, project["name"], project["version"], TAG, sources(),
                       _dist_info())


def build_sdist(sdist_directory: str, config_settings: dict | None = None) -> str:
    project = _project()
    stem = f"{project['name'].replace('-', '_')}-{project['version']}"
    files = {"pyproject.toml": (HERE / "pyproject.toml").read_bytes(),
             "build_backend.py": Path(__file__).read_bytes(),
             "PKG-INFO": metadata().encode(),
             **{f"src/{path}": data for path, data in sources().items()}}
    filename = f"{stem}.tar.gz"
    with tarfile.open(Path(sdist_directory) / filename, "w:gz") as sdist:
        for path, data in files.items():
            member = tarfile.TarInfo(f"{stem}/{path}")
            member.size, member.mtime = len(data), 1767225600
            sdist.addfile(member, io.BytesIO(data))
    return filename
