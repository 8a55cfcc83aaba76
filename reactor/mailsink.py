"""`python -m reactor.mailsink`: a local SMTP server that keeps every message it receives.

    python -m reactor.mailsink serve [--host H] [--port P] [--dir D]   (port 0: any free one)
    python -m reactor.mailsink list [--dir D]                          one line per message

For development (`task up` starts it; `task mail` lists what it got) and for
the tests: a real SMTP server (aiosmtpd), so the mailer is tested against
the protocol, not a fake. Each message is a file `<dir>/<time>-<n>.eml`,
written whole or not at all (a temporary file, then a rename). Defaults:
127.0.0.1:8025, `$MAIL_SINK_DIR` or `.data/mail`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

DEFAULT_DIR = os.environ.get("MAIL_SINK_DIR", ".data/mail")


class Keep:
    """aiosmtpd handler: store each message as an .eml file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if isinstance(content, str):  # pragma: no cover - decode_data is off
            content = content.encode()
        await asyncio.to_thread(self._keep, content)
        return "250 Message accepted for delivery"

    def _keep(self, content: bytes) -> None:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        partial = self.folder / f".{name}.tmp"
        partial.write_bytes(content)
        partial.rename(self.folder / f"{name}.eml")


def line(path: Path) -> str:
    """One line for one kept message: time, recipient, subject (pure, but for the read)."""
    with path.open("rb") as f:
        headers = BytesHeaderParser().parse(f)
    try:
        when = parsedate_to_datetime(headers["Date"]).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        when = "?"
    return f"{when}  {headers.get('To', '?')}  {headers.get('Subject', '')}"


def kept(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml")) if folder.is_dir() else []


async def serve(host: str, port: int, folder: Path) -> None:
    loop = asyncio.get_running_loop()
    handler = Keep(folder)
    server = await loop.create_server(lambda: SMTP(handler, hostname="notify-sink"), host, port)
    bound = server.sockets[0].getsockname()
    print(f"SMTP sink listening on {bound[0]}:{bound[1]}, keeping mail in {folder}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reactor.mailsink",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("serve", help="receive mail")
    run.add_argument("--host", default=os.environ.get("SMTP_SINK_HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("SMTP_PORT", "8025")))
    run.add_argument("--dir", type=Path, default=Path(DEFAULT_DIR))
    show = sub.add_parser("list", help="one line per message received: time, recipient, subject")
    show.add_argument("--dir", type=Path, default=Path(DEFAULT_DIR))
    args: Any = parser.parse_args(argv)
    if args.action == "list":
        messages = kept(args.dir)
        for path in messages:
            print(line(path))
        if not messages:
            print(f"no mail yet in {args.dir}", file=sys.stderr)
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(serve(args.host, args.port, args.dir))
    except OSError as exc:
        print(
            f"mailsink: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
