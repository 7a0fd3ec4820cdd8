"""``mlq dead-letters``: messages given up (a poison message that killed its worker
process MLQ_MAX_DELIVERIES times, work sent again that never finished, a task past its
soft time limit on every try). Their records have error rows; replaying removes those
rows and sends the message again.

Usage::

    mlq dead-letters list
    mlq dead-letters list --all --json
    mlq dead-letters replay 3
"""

from __future__ import annotations

import click

from shared.cli_output import emit, json_option, say, table

COLUMNS = (
    ("id", "id"),
    ("task", "task"),
    ("task_id", "task id"),
    ("records", "records"),
    ("error_code", "code"),
    ("created_at", "given up"),
    ("replayed_at", "replayed"),
)


@click.group("dead-letters")
def dead_letters() -> None:
    """Messages given up, to list and replay."""


@dead_letters.command("list")
@click.option("--all", "include_replayed", is_flag=True, help="Include letters replayed before.")
@json_option
def list_command(include_replayed: bool) -> None:
    """Dead letters not replayed yet (with --all, every one): id, task, why."""
    from producer.dead_letters import letter_as_dict
    from shared.db.dead_letters import list_dead_letters
    from shared.db.engine import session_scope

    with session_scope() as session:
        listed = [
            letter_as_dict(letter)
            for letter in list_dead_letters(session, include_replayed=include_replayed)
        ]
    emit(listed, table(listed, COLUMNS) if listed else "")
    if not listed:
        say("no dead letters")


@dead_letters.command("replay")
@click.argument("letter_id", type=int)
@json_option
def replay_command(letter_id: int) -> None:
    """Remove the letter's error rows and send its message again. Exits 4 for an
    unknown id."""
    from producer.client import Client
    from producer.dead_letters import replay

    done = replay(Client().app, letter_id)
    emit(
        done,
        f"dead letter #{letter_id} ({done['task']} {done['task_id']}) sent again; "
        f"{done['removed_error_rows']} error rows removed",
    )
