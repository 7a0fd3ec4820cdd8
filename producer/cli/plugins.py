"""Commands of `mlq` that live with the workers, found by entry point and loaded only
when run.

`mlq train` needs scikit-learn; `mlq predict` must not. The worker package declares its
commands under the ``mlqueue.commands`` entry-point group (pyproject.toml), so the
producer never imports worker code: it lists the names from the installed metadata and
imports a command only when a user runs it. Without the worker's machine-learning
stack installed, such a command says which extra to install.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

GROUP = "mlqueue.commands"
EXTRA_HINT = "pip install 'mlqueue[worker]'"


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def plugin_names(group: str = GROUP) -> list[str]:
    return sorted(_entry_points(group))


def load_plugin(name: str, group: str = GROUP) -> click.Command | None:
    """The command, or one that explains what is missing; None for an unknown name."""
    found = _entry_points(group).get(name)
    if found is None:
        return None
    try:
        command = found.load()
    except ImportError as error:
        return _needs_extra(name, error)
    if not isinstance(command, click.Command):
        raise TypeError(f"entry point {found.value} is not a click command")
    return command


def _needs_extra(name: str, error: ImportError) -> click.Command:
    @click.command(
        name=name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        help=f"Needs the worker's machine-learning stack ({EXTRA_HINT}).",
    )
    def missing() -> None:
        raise click.ClickException(
            f"`mlq {name}` needs the worker's machine-learning stack, which is not "
            f"installed here ({error}): {EXTRA_HINT}"
        )

    return missing
