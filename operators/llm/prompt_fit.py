"""Fitting a prompt to the server's context window, and asking again after a repeated program."""

from __future__ import annotations

import re

CHARS_PER_TOKEN = 2.7   # measured: Qwen2.5-Coder counts 2,503 tokens where 3.2 chars a token said 2,048


def estimate_tokens(messages: list[dict]) -> int:
    """Returns a cautious estimate of the prompt tokens of `messages` (a few per message for the template)."""
    return int(sum(len(m["content"]) / CHARS_PER_TOKEN + 8 for m in messages))


def fit_context(messages: list[dict], budget: int | None) -> list[dict]:
    """Returns the messages trimmed to about `budget` prompt tokens (None: as they are).

    First the head's rows are cut (each block of indented rows outside code keeps its first
    few, saying how many were left out), then the prelude loses its one-line descriptions.
    The task, the contract and the programs themselves are never cut.
    """
    if budget is None or estimate_tokens(messages) <= budget:
        return messages
    system, user = messages[0]["content"], messages[-1]["content"]
    for compact in (False, True):
        head = _compact_prelude(system) if compact else system
        for keep in (16, 8, 4, 2, 1):
            trimmed = [dict(messages[0], content=head), *messages[1:-1], dict(messages[-1], content=_cap_rows(user, keep))]
            if estimate_tokens(trimmed) <= budget:
                return trimmed
    return trimmed


def _cap_rows(text: str, keep: int) -> str:
    """Returns `text` with every run of indented lines outside ``` fences cut to its first `keep` lines."""
    out, run, fenced = [], [], False

    def flush():
        out.extend(run[:keep])
        if len(run) > keep:
            out.append(f"  ... ({len(run) - keep} more rows left out to fit the context)")
        run.clear()

    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("  ") and not line.startswith("```"):
            run.append(line)
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out)


def _compact_prelude(system: str) -> str:
    """Returns the system message with the prelude's helpers listed by signature only: a helper's line loses
    its description, a grouped line keeps its heading and the helpers it names."""
    out, prelude = [], False
    for line in system.split("\n"):
        if line.startswith("## "):
            prelude = line.startswith("## Helper prelude")
        if prelude and line.startswith("- `") and "`: " in line:
            line = line.split("`: ")[0].replace(" -> np.ndarray", "") + "`"
        elif prelude and line.startswith(("- ", "  ")) and "`" in line:
            heading = line.split(":")[0] + ": " if line.startswith("- ") and ":" in line.split("`")[0] else ""
            line = (heading or "  ") + ", ".join(re.findall(r"`[^`]+`", line))
        out.append(line)
    return "\n".join(out)


def already_tried(messages: list[dict], source: str) -> list[dict]:
    """Returns the messages with the repeated program shown as tried, asking for a different one."""
    note = ("\n\n## Already tried\nYour answer was this program, which has been evaluated before. "
            "Write a different program (another idea, not a renaming or reformatting):\n"
            f"```python\n{source.rstrip()}\n```")
    return [*messages[:-1], dict(messages[-1], content=messages[-1]["content"] + note)]
