"""`python -m reactor.dlq` (`task dlq`, `task dlq:replay`): inspect and replay dead letters.

    python -m reactor.dlq list               one line per dead letter
    python -m reactor.dlq replay SEQ [SEQ]   re-submit these (DEADLETTERS sequences)
    python -m reactor.dlq replay --all       re-submit every replayable one
    python -m reactor.dlq discard SEQ [SEQ]  remove these, once looked at

A replay publishes the original command again (same command id, so its status
and any waiting browser see the new outcome) and removes the dead letter; if
it fails again it comes back as a new dead letter. Poison that is a command
(an unknown type, a payload its schema refused: an API newer than its
reactors) is replayed like one, for once the reactors know it; poison that is
not a command cannot be: it is listed so someone can look at it.
Neither can an email the mailer gave up on (reason `email-failed`): it is
sent at most once, and whether to send another is a person's decision.
`discard` removes dead letters by sequence (no `--all`: each is a decision),
such as those that cannot be replayed: they stayed for the stream's 30 days,
and an alert on `notify_deadletters` with them. A discarded command keeps its
`failed` notice: its outcome stands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence

import msgspec
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from contracts.commands import command_decoder
from contracts.topology import DEADLETTERS_STREAM, command_subject
from reactor.cli import nats_client, run_tool


async def dead_letters(js: JetStreamContext) -> AsyncIterator[RawStreamMsg]:
    seq = 1
    while True:
        try:
            msg = await js.get_msg(DEADLETTERS_STREAM, seq=seq, subject="dlq.>", next=True)
        except NotFoundError:
            return
        assert msg.seq is not None
        yield msg
        seq = msg.seq + 1


def describe(msg: RawStreamMsg) -> str:
    """One line for one dead letter (pure)."""
    h = msg.headers or {}
    return (
        f"{msg.seq:>6}  {h.get('Dlq-Time', '?')[:19]}  {h.get('Dlq-Reason', '?'):<9}"
        f"  deliveries={h.get('Dlq-Deliveries', '?'):<3} {h.get('Dlq-Subject', msg.subject)}"
        f"\n        {h.get('Dlq-Error', '')}"
    )


async def replay(js: JetStreamContext, msg: RawStreamMsg) -> str:
    """Re-submit one dead letter; returns what happened, in a line."""
    assert msg.seq is not None
    if (msg.headers or {}).get("Dlq-Reason") == "email-failed":
        return f"{msg.seq}: an email given up on (sent at most once, never again); left in place"
    try:
        command = command_decoder.decode(msg.data or b"")
    except msgspec.DecodeError:
        return f"{msg.seq}: not a command (poison); left in place"
    await js.publish(
        command_subject(command.type, command.command_id),
        msg.data or b"",
        headers={"Nats-Msg-Id": f"replay:{msg.seq}"},
    )
    await js.delete_msg(DEADLETTERS_STREAM, msg.seq)
    return f"{msg.seq}: replayed command {command.command_id}"


async def run(args: argparse.Namespace) -> int:
    async with nats_client("dlq") as nc:
        js = nc.jetstream()
        letters = [m async for m in dead_letters(js)]
        if args.action == "list":
            for msg in letters:
                print(describe(msg))
            print(f"{len(letters)} dead letter(s)")
            return 0
        chosen = letters if args.all else [m for m in letters if m.seq in set(args.seqs)]
        missing = set(args.seqs) - {m.seq for m in letters}
        for seq in sorted(missing):
            print(f"{seq}: no such dead letter")
        for msg in chosen:
            if args.action == "discard":
                assert msg.seq is not None
                await js.delete_msg(DEADLETTERS_STREAM, msg.seq)
                print(f"{msg.seq}: discarded ({(msg.headers or {}).get('Dlq-Reason', '?')})")
            else:
                print(await replay(js, msg))
        return 1 if missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reactor.dlq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="list dead letters")
    rp = sub.add_parser("replay", help="re-submit dead letters")
    rp.add_argument("seqs", nargs="*", type=int, help="DEADLETTERS sequences (from `list`)")
    rp.add_argument("--all", action="store_true", help="every replayable dead letter")
    dp = sub.add_parser("discard", help="remove dead letters, once looked at")
    dp.add_argument("seqs", nargs="+", type=int, help="DEADLETTERS sequences (from `list`)")
    dp.set_defaults(all=False)  # one by one, always
    args = parser.parse_args(argv)
    if args.action == "replay" and not (args.seqs or args.all):
        parser.error("replay needs sequences or --all")
    if args.action == "replay" and args.seqs and args.all:
        parser.error("replay takes sequences or --all, not both")
    return run_tool("dlq", run(args))


if __name__ == "__main__":
    sys.exit(main())
