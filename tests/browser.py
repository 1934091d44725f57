"""A real browser for the tests: Debian's Chromium, headless, driven through the Chrome DevTools Protocol.

The protocol runs over a pipe (``--remote-debugging-pipe``: Chromium reads JSON commands on fd 3 and writes replies
and events on fd 4, each message ended by a NUL byte), so the tests need no websocket client, selenium or
playwright. ``check_page`` opens an HTML file and reports what a listener would meet: every ``<audio>`` element's
state after loading (``readyState``, ``error``, ``duration``) and the number of samples Web Audio decodes from its
source, every image's size, and every console error or uncaught exception.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    """The browser did not answer, or answered a command with an error."""


class Chromium:
    """One headless Chromium process and its DevTools pipe; ``with Chromium(tmp) as browser: ...``."""

    def __init__(self, profile_dir: Path, timeout: float = 120.0):
        if CHROMIUM is None:
            raise BrowserError("chromium is not installed (./install.sh installs Debian's chromium)")
        self.profile_dir, self.timeout = Path(profile_dir), timeout
        self.events: list[dict] = []
        self._next_id, self._buffer = 0, b""

    def __enter__(self) -> Chromium:
        cmd_read, self._cmd_write = os.pipe()  # we write commands, Chromium reads them on fd 3
        self._out_read, out_write = os.pipe()  # Chromium writes on fd 4, we read
        # above fd 4, so that placing them on 3 and 4 in the child cannot overwrite one with the other
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_read, out_write)]
        for fd in (cmd_read, out_write):
            os.close(fd)

        def pipes_on_3_and_4() -> None:  # runs in the child: dup2 leaves the copies inheritable
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.stderr_path = self.profile_dir / "chromium.stderr"
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={self.profile_dir / 'profile'}",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--autoplay-policy=no-user-gesture-required",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.stderr_path, "wb"),  # noqa: SIM115 (the child keeps it)
            close_fds=False,
            preexec_fn=pipes_on_3_and_4,
        )
        for fd in high:
            os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_write, self._out_read):
            os.close(fd)

    # ------------------------------------------------------------------------------------------------ protocol
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._out_read], [], [], left)
            if ready:
                chunk = os.read(self._out_read, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium closed the pipe; its stderr: {self.stderr_path}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout: float | None = None
    ) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept in ``events``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for event in self.events:
                if event["method"] == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event
            reply = self._read_message(deadline)
            if "method" in reply:
                self.events.append(reply)

    def open(self, url: str, width: int = 1400, height: int = 1000) -> str:
        """A new tab showing ``url`` once its load event fired, with console and log collection on; its session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        return session

    def evaluate(self, expression: str, session: str) -> object:
        """The value of a JavaScript expression (awaited if it is a promise); a thrown exception is an error."""
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, session=session
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str, path: Path) -> None:
        path.write_bytes(
            base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
        )

    def console_errors(self, session: str) -> list[str]:
        """Console errors, failed assertions, uncaught exceptions and the browser's error log entries so far."""
        errors = []
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif event["method"] == "Runtime.exceptionThrown":
                errors.append(f"exception: {params['exceptionDetails']}")
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"log: {params['entry']['text']} ({params['entry'].get('url', '')[:80]})")
        return errors


# What a listener meets: each player loaded to HAVE_ENOUGH_DATA without a media error, played (muted) a little,
# its source decoded by Web Audio at 16 kHz (no resampling, so the sample count is exact); each image decoded.
_INSPECT = """
(async () => {
  const settle = (a) => new Promise((resolve) => {
    if (a.readyState >= 4 || a.error) { resolve(); return; }
    a.addEventListener('canplaythrough', resolve, {once: true});
    a.addEventListener('error', resolve, {once: true});
    setTimeout(resolve, 30000);
  });
  const ctx = new OfflineAudioContext(1, 1, 16000);
  const audio = [];
  for (const a of document.querySelectorAll('audio')) {
    await settle(a);
    const loaded = {readyState: a.readyState, error: a.error ? `${a.error.code} ${a.error.message}` : null,
                    duration: a.duration};
    let decoded = null, decodeError = null, played = false, playError = null;
    try {
      const bytes = await (await fetch(a.currentSrc)).arrayBuffer();
      decoded = (await ctx.decodeAudioData(bytes)).length;
    } catch (e) { decodeError = String(e); }
    if (!a.error) {
      try {
        a.muted = true;
        await a.play();
        await new Promise((r) => setTimeout(r, 50));
        played = a.currentTime > 0 || !a.paused;
        a.pause();
        a.currentTime = 0;
        a.muted = false;
      } catch (e) { playError = String(e); }
    }
    audio.push({...loaded, declared: Number(a.dataset.samples), srcChars: a.currentSrc.length,
                decoded, decodeError, played, playError});
  }
  const images = [...document.images].map((i) => ({complete: i.complete, width: i.naturalWidth,
                                                     height: i.naturalHeight}));
  return {audio, images, title: document.title};
})()
"""


@dataclass
class PageReport:
    title: str
    audio: list[dict]
    images: list[dict]
    console_errors: list[str] = field(default_factory=list)

    def problems(self, rate: int = 16000) -> list[str]:
        """Everything that keeps the page from being listened to; empty for a good page."""
        out = list(self.console_errors)
        for i, a in enumerate(self.audio):
            if a["error"] or a["readyState"] < 4:
                out.append(f"audio {i}: readyState {a['readyState']}, error {a['error']}")
            if a["decoded"] != a["declared"]:
                out.append(f"audio {i}: decoded {a['decoded']} samples of {a['declared']} ({a['decodeError']})")
            elif abs(a["duration"] - a["declared"] / rate) > 1.0 / rate + 1e-3:
                out.append(f"audio {i}: duration {a['duration']} s for {a['declared']} samples")
            if not a["played"]:
                out.append(f"audio {i}: did not play ({a['playError']})")
        out += [f"image {i}: not decoded" for i, im in enumerate(self.images) if not (im["complete"] and im["width"])]
        return out


def check_page(
    page: Path, workdir: Path, screenshot: Path | None = None, width: int = 1400, height: int = 1000
) -> PageReport:
    """Open ``page`` in headless Chromium and inspect it (``_INSPECT``); optionally save a ``width`` x ``height``
    screenshot of its top."""
    with Chromium(workdir) as browser:
        session = browser.open(Path(page).resolve().as_uri(), width, height)
        found = browser.evaluate(_INSPECT, session)
        if screenshot is not None:
            browser.evaluate("window.scrollTo(0, 0)", session)
            browser.screenshot(session, screenshot)
        time.sleep(0.2)  # let late console messages arrive
        browser.evaluate("1", session)
        return PageReport(found["title"], found["audio"], found["images"], browser.console_errors(session))
