"""``rthub-client`` installs on its own: built from ``sdk/python`` by pip (offline: the build
backend is a standard-library script), installed into a fresh venv that has no site
packages and whose only other wheel is websockets (re-packed from this venv's install, the
one dependency), and that interpreter talks to the real hub with no Ray, asyncpg or redis."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.one_backend

CHAT = """
import asyncio, importlib.util, json, sys
from client import Hub

async def main(url, token, encoding):
    try:
        hub = Hub(url, token, encoding=encoding)
    except ValueError as refused:
        json.dump({"refused": str(refused)}, sys.stdout)
        return
    await hub.connect()
    got = asyncio.get_running_loop().create_future()
    hub.on("chat.message", lambda content, frame: got.done() or got.set_result(content["text"]))
    room = f"bare-{encoding}"
    await hub.request("room.create", {"room_id": room, "name": room})
    await hub.request("chat.send", {"room": room, "text": f"from a bare venv in {encoding}",
                                    "client_msg_id": "1"})
    text = await asyncio.wait_for(got, 30)
    spoke = hub._wire.name  # the codec of the socket the hub accepted
    await hub.close()
    found = [m for m in ("ray", "asyncpg", "redis", "msgpack", "serve", "actors", "storage")
             if importlib.util.find_spec(m)]
    json.dump({"text": text, "found": found, "client": sys.modules["client"].__file__,
               "spoke": spoke},
              sys.stdout)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


def backend():
    """``sdk/python/build_backend.py``, for its wheel writer."""
    spec = importlib.util.spec_from_file_location("build_backend",
                                                  ROOT / "sdk/python/build_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def repack(name: str, directory: Path) -> str:
    """A wheel of the distribution ``name`` as this venv has it installed (its own tags):
    the dependency's wheel without a network."""
    dist = importlib.metadata.distribution(name)
    info = f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info/"
    files, dist_info = {}, {}
    for path in dist.files:
        posix = path.as_posix()
        if posix.startswith("..") or "__pycache__" in posix:
            continue  # scripts pip wrote, bytecode
        if posix.startswith(info):
            key = posix.removeprefix(info)
            if key not in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                dist_info[key] = path.read_binary()
        else:
            files[posix] = path.read_binary()
    tag = next(line.split(": ", 1)[1] for line in dist_info["WHEEL"].decode().splitlines()
               if line.startswith("Tag: "))
    return backend().write_wheel(directory, dist.metadata["Name"], dist.version, tag, files,
                                 dist_info)


async def run(*command: str, cwd: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, f"{command[:3]} failed:\n{err.decode()[-3000:]}"
    return out.decode()


async def test_the_sdk_installs_alone_and_talks_to_the_hub(hub, tmp_path):
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    wheels.mkdir()
    repack("websockets", wheels)
    await run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path)
    python = venv / "bin" / "python"
    # pip of this venv installs into the bare one; --no-index: nothing from the network
    await run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
              "--no-index", "--find-links", str(wheels), str(ROOT / "sdk/python"),
              cwd=tmp_path)
    chat = ("-I", "-c", CHAT, hub.url, hub.token("solo"))
    result = json.loads(await run(str(python), *chat, "json", cwd=tmp_path))
    assert result["text"] == "from a bare venv in json"
    assert result["found"] == []  # no Ray, asyncpg, redis, msgpack nor server package
    assert result["client"].startswith(str(venv))  # the installed SDK, not this checkout
    assert json.loads(await run(str(python), *chat, "msgpack", cwd=tmp_path)) == {
        "refused": "encoding='msgpack' needs the msgpack package: "
                   "pip install 'rthub-client[msgpack]'"}

    # the extra brings msgpack, and the same script speaks it
    repack("msgpack", wheels)
    await run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
              "--no-index", "--find-links", str(wheels), f"{ROOT / 'sdk/python'}[msgpack]",
              cwd=tmp_path)
    result = json.loads(await run(str(python), *chat, "msgpack", cwd=tmp_path))
    assert result["text"] == "from a bare venv in msgpack"
    assert result["spoke"] == "msgpack"
    assert result["found"] == ["msgpack"]
