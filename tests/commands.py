"""Read back the commands lander-tui prints, and check them against each engine's real flag set.

The flag sets are in tests/data/engine-flags/*.txt, taken from the engines' own sources (each file says
which file and commit). A command passes when every flag it uses exists for that engine and every value
is one the engine accepts.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

FLAGS_DIR = Path(__file__).resolve().parent / "data" / "engine-flags"
#: Flags that take no value.
SWITCHES = {"--enforce-eager", "--enable-lora", "-kvu", "--swa-full", "--no-mmproj", "--language-model-only",
            "--language-only"}


def flag_set(name: str) -> dict[str, set[str]]:
    """FLAG -> allowed values (empty: any value), from a flag file."""
    out: dict[str, set[str]] = {}
    for line in (FLAGS_DIR / f"{name}.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            head, *choices = line.split()
            out[head] = set(choices)
    return out


@dataclass
class Command:
    program: list[str]  # e.g. ["vllm", "serve", "MODEL"]
    env: dict[str, str] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)  # flag -> value ("" for a switch)
    comments: list[str] = field(default_factory=list)


def command_lines(text: str) -> tuple[list[str], list[str]]:
    """(command lines, comment lines): a printed command may start with a `# what to do` line."""
    lines = text.splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith("#")], [ln for ln in lines if ln.startswith("#")]


def parse(text: str, program_words: int) -> Command:
    """`ENV=1 prog sub MODEL --flag value --switch ...` -> Command (one command line, comments apart)."""
    lines, comments = command_lines(text)
    assert len(lines) == 1, f"one command line expected, got {lines}"
    words = shlex.split(lines[0])
    env = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    program, rest = words[:program_words], words[program_words:]
    flags: dict[str, str] = {}
    i = 0
    while i < len(rest):
        flag = rest[i]
        assert flag.startswith("-"), f"stray word {flag!r} in {lines[0]!r}"
        assert flag not in flags, f"{flag} given twice"
        if flag in SWITCHES:
            flags[flag], i = "", i + 1
        else:
            assert i + 1 < len(rest), f"{flag} has no value"
            flags[flag], i = rest[i + 1], i + 2
    return Command(program, env, flags, comments)


def check(cmd: Command, allowed: dict[str, set[str]]) -> list[str]:
    """Every flag known to the engine, every value among its choices: the problems, if any."""
    problems = []
    for flag, value in cmd.flags.items():
        if flag not in allowed:
            problems.append(f"unknown flag {flag}")
        elif allowed[flag] and value not in allowed[flag]:
            problems.append(f"{flag} {value!r} is not one of {sorted(allowed[flag])}")
    return problems
