"""mvault from Python.

A small typed layer over the ``mvault`` command that the same wheel
installs: each function runs it with ``--json`` and returns what it
printed, parsed. Errors raise :class:`MvaultError` subclasses that carry
mvault's error kind, its message, its hints and its exit code, so a
caller can tell a refused policy (:class:`PolicyError`) from a failed
integrity check (:class:`IntegrityError`) without reading text.

Every function takes ``repo`` (the vault's clone; default: the current
directory) and ``key`` (the OpenSSH ed25519 private key; default: what
mvault finds: ``$MVAULT_KEY``, git's ``user.signingkey``,
``~/.ssh/id_ed25519``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

__all__ = [
    "Added",
    "IntegrityError",
    "InternalError",
    "MvaultError",
    "PolicyError",
    "Promoted",
    "UserError",
    "Verified",
    "add",
    "binary",
    "log",
    "promote",
    "pull",
    "status",
    "verify",
]

PathLike = Union[str, "os.PathLike[str]"]


class MvaultError(Exception):
    """mvault refused or failed. ``kind`` is ``user``, ``policy``,
    ``integrity`` or ``internal``; ``hints`` are mvault's ``hint:`` lines."""

    kind = "internal"

    def __init__(self, message: str, hints: Sequence[str] = (), exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hints = list(hints)
        self.exit_code = exit_code

    def __str__(self) -> str:
        return "\n".join([self.message, *("hint: " + h for h in self.hints)])


class UserError(MvaultError):
    """A mistake in what was asked (exit 2): a bad name, a missing file."""

    kind = "user"


class PolicyError(MvaultError):
    """The vault's policy refuses it (exit 3): a missing role, approvals."""

    kind = "policy"


class IntegrityError(MvaultError):
    """Something does not verify (exit 4): a digest, a signature, a chain."""

    kind = "integrity"


class InternalError(MvaultError):
    """mvault itself failed (exit 1), or could not be run."""

    kind = "internal"


_BY_EXIT = {2: UserError, 3: PolicyError, 4: IntegrityError}


@dataclass(frozen=True)
class Added:
    """A registered version (``mvault add --json``)."""

    model: str
    version: str
    commit: str
    tag: str
    manifest_sha256: str
    files: int
    bytes: int
    reused: int
    pushed: bool
    raw: Dict[str, Any]


@dataclass(frozen=True)
class Verified:
    """A pulled or verified version: every digest and signature checked."""

    model: str
    version: str
    author: str
    files: int
    bytes: int
    manifest_sha256: str


@dataclass(frozen=True)
class Promoted:
    """A promotion (``mvault promote --json``)."""

    model: str
    version: str
    from_stage: Optional[str]
    to_stage: str
    tags: List[str]
    pushed: bool
    raw: Dict[str, Any]


def binary() -> str:
    """The mvault program: ``$MVAULT_BIN``, else the one this wheel put
    beside the interpreter, else the first on ``PATH``."""
    env = os.environ.get("MVAULT_BIN")
    if env:
        return env
    exe = "mvault.exe" if sys.platform == "win32" else "mvault"
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / exe
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("mvault")
    if found:
        return found
    raise InternalError(
        "the mvault program is not installed",
        ["pip install mvault, or set MVAULT_BIN to the binary"],
    )


def _run(args: Sequence[str], repo: Optional[PathLike], key: Optional[PathLike]) -> str:
    cmd = [binary()]
    if key is not None:
        cmd += ["--key", os.fspath(key)]
    if repo is not None:
        cmd += ["-C", os.fspath(repo)]
    cmd += ["--quiet", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise InternalError(f"cannot run {cmd[0]}: {e}") from e
    if done.returncode != 0:
        message, hints = _parse_error(done.stderr)
        raise _BY_EXIT.get(done.returncode, InternalError)(message, hints, done.returncode)
    return done.stdout


def _parse_error(stderr: str) -> "tuple[str, List[str]]":
    lines: List[str] = []
    hints: List[str] = []
    for line in stderr.splitlines():
        if line.startswith("hint: "):
            hints.append(line[len("hint: ") :])
        elif line.startswith("mvault: warning: "):
            continue
        else:
            lines.append(line[len("mvault: ") :] if line.startswith("mvault: ") else line)
    return "\n".join(lines).strip() or "mvault failed", hints


def _json(text: str) -> Any:
    text = text.strip()
    if not text:
        raise InternalError("mvault printed nothing where JSON was expected")
    try:
        return json.loads(text)
    except ValueError as e:
        raise InternalError(f"mvault printed something other than JSON: {e}") from e


def _pairs(flag: str, items: Optional[Mapping[str, Any]]) -> List[str]:
    out: List[str] = []
    for k, v in (items or {}).items():
        out += [flag, f"{k}={v}"]
    return out


def add(
    path: PathLike,
    *,
    model: str,
    version: str,
    parent: Optional[str] = None,
    framework: Optional[str] = None,
    metrics: Optional[Mapping[str, float]] = None,
    metadata: Optional[Mapping[str, str]] = None,
    provenance: Optional[Mapping[str, str]] = None,
    message: Optional[str] = None,
    push: bool = True,
    repo: Optional[PathLike] = None,
    key: Optional[PathLike] = None,
) -> Added:
    """Register the file or directory at ``path`` as ``model@version``:
    encrypted, signed, committed, and pushed when the clone has a remote
    (``push=False`` keeps it local)."""
    args = ["add", os.fspath(Path(path).absolute()), "--model", model, "--version", version]
    if parent is not None:
        args += ["--parent", parent]
    if framework is not None:
        args += ["--framework", framework]
    for k, v in (metrics or {}).items():
        args += ["--metric", f"{k}={float(v)!r}"]
    args += _pairs("--meta", metadata) + _pairs("--provenance", provenance)
    if message is not None:
        args += ["--message", message]
    if not push:
        args.append("--no-push")
    o = _json(_run([*args, "--json"], repo, key))
    return Added(
        model=o["model"],
        version=o["version"],
        commit=o["commit"],
        tag=o["tag"],
        manifest_sha256=o["manifest_sha256"],
        files=int(o["files"]),
        bytes=int(o["bytes"]),
        reused=int(o["reused"]),
        pushed=o.get("pushed") is not None,
        raw=o,
    )


def _verified(o: Mapping[str, Any]) -> Verified:
    return Verified(
        model=o["model"],
        version=o["version"],
        author=o["author"],
        files=int(o["files"]),
        bytes=int(o["bytes"]),
        manifest_sha256=o["manifest_sha256"],
    )


def pull(
    ref: str,
    dest: PathLike,
    *,
    source: Optional[str] = None,
    repo: Optional[PathLike] = None,
    key: Optional[PathLike] = None,
) -> Path:
    """Pull ``ref`` (``model@version``, ``model`` for the newest, or
    ``model#stage``) into ``dest``, every digest and signature verified
    before a file is written; ``source`` pulls straight from a server URL
    without a clone. Returns ``dest``."""
    out = Path(dest).absolute()
    args = ["pull", ref, "-o", os.fspath(out), "--json"]
    if source is not None:
        args += ["--from", source]
    _json(_run(args, repo, key))
    return out


def verify(ref: str, *, repo: Optional[PathLike] = None, key: Optional[PathLike] = None) -> Verified:
    """Decrypt and check every file of ``ref`` without writing it."""
    return _verified(_json(_run(["verify", ref, "--json"], repo, key)))


def promote(
    ref: str,
    *,
    to: str,
    reason: Optional[str] = None,
    ticket: Optional[str] = None,
    push: bool = True,
    repo: Optional[PathLike] = None,
    key: Optional[PathLike] = None,
) -> Promoted:
    """Promote ``ref`` to the stage ``to`` with a signed tag."""
    args = ["promote", ref, "--to", to, "--json"]
    if reason is not None:
        args += ["--reason", reason]
    if ticket is not None:
        args += ["--ticket", ticket]
    if not push:
        args.append("--no-push")
    o = _json(_run(args, repo, key))
    return Promoted(
        model=o["model"],
        version=o["version"],
        from_stage=o.get("from"),
        to_stage=o["to"],
        tags=list(o.get("tags", [])),
        pushed=o.get("pushed") is not None,
        raw=o,
    )


def status(
    model: Optional[str] = None, *, repo: Optional[PathLike] = None, key: Optional[PathLike] = None
) -> List[Dict[str, Any]]:
    """Each model's versions and what each stage serves, as ``status
    --json`` prints it (one object per model)."""
    args = ["status", "--json"] + ([model] if model else [])
    return [json.loads(line) for line in _run(args, repo, key).splitlines() if line.strip()]


def log(
    *,
    model: Optional[str] = None,
    version: Optional[str] = None,
    action: Optional[str] = None,
    actor: Optional[str] = None,
    since: Optional[str] = None,
    until: Optional[str] = None,
    repo: Optional[PathLike] = None,
    key: Optional[PathLike] = None,
) -> List[Dict[str, Any]]:
    """The vault's events (one dict per event, as ``log --json`` prints
    them), oldest first, filtered as ``mvault log`` filters."""
    args = ["log", "--json"]
    for flag, value in (
        ("--model", model),
        ("--version", version),
        ("--action", action),
        ("--actor", actor),
        ("--since", since),
        ("--until", until),
    ):
        if value is not None:
            args += [flag, value]
    return [json.loads(line) for line in _run(args, repo, key).splitlines() if line.strip()]
