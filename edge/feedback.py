"""What the gate tells the person in front of it: a spoken prompt and a line on a text display.

Feedback is never on the decision's critical path: the agent hands a prompt to `Feedback.say`
after it has queued the relay pulse, and a single worker thread plays it. A prompt that arrives
while the speaker is still busy replaces any prompt still waiting (the newest outcome is the one
the person needs to hear), so a slow or hung speaker can delay nothing but itself.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from edge.devices.base import DeviceError

log = logging.getLogger(__name__)


class Prompt(StrEnum):
    """One thing the gate can say; the value names the WAV file (`<value>.wav`)."""

    GRANTED = "granted"
    SHOW_PASS = "show_pass"  # noqa: S105 - a prompt name, not a password
    UNREADABLE = "unreadable"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REVOKED = "revoked"
    WRONG_GATE = "wrong_gate"
    OUTSIDE_HOURS = "outside_hours"
    USE_LIMIT = "use_limit"
    PASSBACK = "passback"
    RETEST = "retest"
    FEVER = "fever"
    TAKE_TEMPERATURE = "take_temperature"
    UNLOCK_FAILED = "unlock_failed"
    LOCKDOWN = "lockdown"
    SHOW_LIVE_CODE = "show_live_code"
    STALE_CODE = "stale_code"
    REPLAYED = "replayed"


# Spoken Mandarin and the text display's line; short, so an elderly resident hears it whole.
PROMPT_TEXT: dict[Prompt, str] = {
    Prompt.GRANTED: "请通行",
    Prompt.SHOW_PASS: "请出示通行证",
    Prompt.UNREADABLE: "无法识别，请重新出示通行证",
    Prompt.EXPIRED: "通行证已过期，请到居委会办理",
    Prompt.NOT_YET_VALID: "通行证尚未生效",
    Prompt.REVOKED: "通行证已失效，请到居委会办理",
    Prompt.WRONG_GATE: "此通行证不能在本门使用",
    Prompt.OUTSIDE_HOURS: "现在不是通行时段",
    Prompt.USE_LIMIT: "通行次数已用完，请到居委会办理",
    Prompt.PASSBACK: "请勿重复刷码",
    Prompt.RETEST: "体温异常，请稍候复测",
    Prompt.FEVER: "体温异常，请联系保安",
    Prompt.TAKE_TEMPERATURE: "请测量体温",
    Prompt.UNLOCK_FAILED: "门未打开，请联系保安",
    Prompt.LOCKDOWN: "小区封控中，暂不能通行",
    Prompt.SHOW_LIVE_CODE: "请出示手机上的动态通行码",
    Prompt.STALE_CODE: "动态码已过期，请打开手机页面重新出示",
    Prompt.REPLAYED: "此码已使用过，请出示本人手机",
}

# Decision reasons (edge.decide.Reason values) to prompts; a reason not listed says UNREADABLE.
REASON_PROMPTS: dict[str, Prompt] = {
    "ok": Prompt.GRANTED,
    "expired": Prompt.EXPIRED,
    "not_yet_valid": Prompt.NOT_YET_VALID,
    "revoked": Prompt.REVOKED,
    "wrong_site": Prompt.WRONG_GATE,
    "wrong_gate": Prompt.WRONG_GATE,
    "outside_hours": Prompt.OUTSIDE_HOURS,
    "use_limit": Prompt.USE_LIMIT,
    "passback": Prompt.PASSBACK,
    "fever": Prompt.FEVER,
    "no_temperature": Prompt.TAKE_TEMPERATURE,
    "lockdown": Prompt.LOCKDOWN,
    "no_live_code": Prompt.SHOW_LIVE_CODE,
    "stale_code": Prompt.STALE_CODE,
    "replayed": Prompt.REPLAYED,
}


def prompt_for(reason: str) -> Prompt:
    """The prompt for a decision's exact reason."""
    return REASON_PROMPTS.get(reason, Prompt.UNREADABLE)


class Announcer(Protocol):
    """One output: a speaker or a text display. Blocking is fine; it runs on the worker."""

    def announce(self, prompt: Prompt, text: str) -> None: ...

    def close(self) -> None: ...


class FeedbackSection(BaseModel):
    """The `[feedback]` section of gate.toml."""

    model_config = ConfigDict(extra="forbid")

    speaker: Literal["alsa", "file", "none"] = Field(
        "none", description="alsa: play WAVs with aplay; file: log prompts (no sound card)."
    )
    sounds_dir: str = Field(
        "sounds", description="One <prompt>.wav per prompt; the operator may replace any of them."
    )
    alsa_device: str = Field("default", description="ALSA device for aplay -D.")
    player: list[str] = Field(
        default_factory=lambda: ["aplay", "-q", "-D", "{device}", "{file}"],
        description="Command that plays one WAV; {device} and {file} are filled in.",
    )
    play_timeout_s: float = Field(8.0, gt=0, description="A player running longer is stopped.")
    log_path: str = Field("prompts.log", description="file: where prompts are appended.")
    display: Literal["serial", "none"] = Field("none", description="Serial text display.")
    display_port: str = Field("", description="Serial port of the text display.")
    display_baud: int = Field(9600, description="Text display speed.")
    display_encoding: Literal["utf-8", "gb18030"] = Field(
        "utf-8", description="Cheap LED boards often want GB18030."
    )


def announcer_factories(cfg: FeedbackSection, base: Path) -> list[Callable[[], Announcer]]:
    """How to open each configured output; empty when the gate has none."""
    out: list[Callable[[], Announcer]] = []
    if cfg.speaker == "alsa":
        from edge.devices.speaker import AlsaSpeaker

        sounds = base / cfg.sounds_dir
        out.append(lambda: AlsaSpeaker(sounds, cfg.alsa_device, cfg.player, cfg.play_timeout_s))
    elif cfg.speaker == "file":
        from edge.devices.speaker import FileSink

        out.append(lambda: FileSink(base / cfg.log_path))
    if cfg.display == "serial":
        from edge.devices.text_display import SerialTextDisplay

        if not cfg.display_port:
            raise ValueError("feedback.display = 'serial' needs display_port")
        out.append(
            lambda: SerialTextDisplay(cfg.display_port, cfg.display_baud, cfg.display_encoding)
        )
    return out


FEEDBACK_ERRORS = (DeviceError, OSError, TimeoutError)


class Feedback:
    """The agent's handle: `say()` never blocks; one worker plays prompts in order of arrival."""

    def __init__(self, factories: Sequence[Callable[[], Announcer]]) -> None:
        self.played = 0
        self.replaced = 0
        self.faults = 0
        self._factories = list(factories)
        self._outputs: list[Announcer | None] = [None] * len(self._factories)
        self._pending: queue.Queue[Prompt | None] = queue.Queue(maxsize=1)
        self._stopped: set[int] = set()  # outputs whose driver raised a bug
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._factories)

    def start(self, prepare: Callable[[], None] | None = None) -> None:
        """Start the worker; `prepare` (e.g. making missing WAVs) runs on it first."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(
                target=self._work, args=(prepare,), name="feedback", daemon=True
            )
            self._thread.start()

    def say(self, prompt: Prompt) -> None:
        """Queue a prompt; a prompt still waiting is replaced, the caller never waits."""
        if not self.enabled:
            return
        while True:
            try:
                self._pending.put_nowait(prompt)
                return
            except queue.Full:
                try:
                    self._pending.get_nowait()
                    self.replaced += 1
                except queue.Empty:
                    pass

    def close(self) -> None:
        if self._thread is not None:
            with self._pending.mutex:  # drop what is waiting: the agent is stopping
                self._pending.queue.clear()
            self._pending.put(None)
            self._thread.join(timeout=2.0)
        for output in self._outputs:
            if output is not None:
                _close_quietly(output)

    def _work(self, prepare: Callable[[], None] | None) -> None:
        if prepare is not None:
            try:
                prepare()
            except Exception:  # no sounds is a fault to report, not a reason to stop the gate
                log.exception("preparing feedback failed")
        while (prompt := self._pending.get()) is not None:
            for index in range(len(self._factories)):
                if index not in self._stopped:
                    self._announce(index, prompt)
            self.played += 1

    def _announce(self, index: int, prompt: Prompt) -> None:
        output = self._outputs[index]
        try:
            if output is None:  # opened lazily, and again after a fault (a display replugged)
                output = self._outputs[index] = self._factories[index]()
            output.announce(prompt, PROMPT_TEXT[prompt])
        except FEEDBACK_ERRORS as exc:
            self.faults += 1
            log.warning("feedback output %d failed on %s: %s", index, prompt.value, exc)
            if output is not None:
                _close_quietly(output)
            self._outputs[index] = None
        except Exception:  # a bug in a driver: stop that output, keep the gate and the others
            self.faults += 1
            log.critical("feedback output %d has a driver error; stopped", index, exc_info=True)
            self._stopped.add(index)
            self._outputs[index] = None

    def counters(self) -> dict[str, int]:
        return {
            "prompts_played": self.played,
            "prompts_replaced": self.replaced,
            "feedback_faults": self.faults,
        }


def _close_quietly(output: Announcer) -> None:
    try:
        output.close()
    except Exception as exc:  # a dying device may fail to close; it is gone either way
        log.debug("feedback close failed: %s", exc)
