"""A real citybrain server (``citybrain demo``) and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("CITYBRAIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class DemoServer:
    base_url: str
    accounts: dict[str, str]  # username -> password, as printed by `citybrain demo`
    output: list[str]


def _free_port() -> int:
    """A free port below the kernel's ephemeral range. A port the kernel hands out (bind to 0) may
    be given again to an outgoing connection while the demo spends a minute loading — even to the
    simulator's own attempts to reach the not-yet-listening broker (a TCP self-connect) — and the
    server then cannot bind it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, low))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    data_dir = tmp_path_factory.mktemp("e2e")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    # Its own embedded MQTT broker port, so a demo already running here does not collide.
    env |= {"CITYBRAIN_DATA_DIR": str(data_dir), "CITYBRAIN_LOG_LEVEL": "WARNING",
            "CITYBRAIN_MQTT_PORT": str(_free_port())}
    cli = Path(sys.executable).with_name("citybrain")
    proc = subprocess.Popen(
        [str(cli), "demo", "--port", str(port), "--residents", "100", "--enterprises", "20",
         "--events", "300"],
        cwd=data_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("citybrain demo exited early:\n" + "".join(lines))
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("citybrain demo did not become ready:\n" + "".join(lines))
    accounts = dict(re.findall(r"^\s+(\w+)\s+(Zc-\w+)\s+\w+$", "".join(lines), re.M))
    yield DemoServer(base, accounts, lines)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"chromium not found at {CHROMIUM}: run `make test` (it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, demo_server):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    pg.outside_requests = []  # type: ignore[attr-defined]
    pg.on("request", lambda r: None if r.url.startswith((demo_server.base_url, "data:", "blob:"))
          else pg.outside_requests.append(r.url))  # type: ignore[attr-defined]
    yield pg
    context.close()

