"""The demo IDE page: an editor, a Run button, and a few features worth tracking.

Every page connection is an IDE session (``track_nicegui_app`` records it);
this page adds the runs and the feature uses, under the session id of its
NiceGUI client.
"""

from __future__ import annotations

import re
from typing import Final

from nicegui import Client, ui

from ..nicegui import NiceGUITracking
from .interpreter import run_program

__all__ = ["EXAMPLES", "add_ide_page", "renumber"]

EXAMPLES: Final[dict[str, str]] = {
    "Squares": (
        '10 REM squares of 1 to 5\n20 FOR I = 1 TO 5\n30 PRINT I; " squared is "; I^2\n'
        "40 NEXT I\n50 END\n"
    ),
    "Countdown": (
        '10 N = 3\n20 PRINT "T minus "; N\n30 N = N - 1\n40 IF N > 0 THEN 20\n'
        '50 PRINT "liftoff"\n'
    ),
    "Error": '10 PRINT "about to divide"\n20 PRINT 1 / 0\n',
}

_TARGET: Final = re.compile(r"\b(GOTO|THEN)(\s+)(\d+)", re.IGNORECASE)
_NUMBERED: Final = re.compile(r"\s*(\d+)(.*)")


def renumber(source: str, *, start: int = 10, step: int = 10) -> str:
    """Number the lines ``start``, ``start + step``, ... and fix jump targets."""
    lines = [
        match.groups()
        for text in source.splitlines()
        if (match := _NUMBERED.fullmatch(text)) is not None
    ]
    mapping = {old: str(start + step * index) for index, (old, _) in enumerate(lines)}

    def retarget(match: re.Match[str]) -> str:
        keyword, space, target = match.groups()
        return f"{keyword}{space}{mapping.get(target, target)}"

    return "".join(
        f"{mapping[old]}{_TARGET.sub(retarget, rest)}\n" for old, rest in lines
    )


def add_ide_page(tracking: NiceGUITracking) -> None:
    """Register the IDE page at ``/``."""
    tracker = tracking.tracker

    @ui.page("/", title="MBASIC demo IDE")
    def ide(client: Client) -> None:
        session = tracking.session_id(client)

        def feature(name: str, data: object = None) -> None:
            tracker.track_feature_usage(session, name, data)
            tracking.note_activity(client)

        def run() -> None:
            result = run_program(editor.value or "")
            tracker.track_program_execution(
                session,
                result.program_lines,
                result.elapsed_ms,
                result.lines_executed,
                result.success,
                result.error,
            )
            tracking.note_activity(client)
            output.set_text("\n".join(result.output))
            if result.error:
                status.set_text(f"Error in {result.error}")
                status.classes(replace="demo-status text-negative")
            else:
                status.set_text(
                    f"Ran {result.lines_executed} lines in {result.elapsed_ms} ms"
                )
                status.classes(replace="demo-status text-positive")

        def load_example(name: str) -> None:
            editor.set_value(EXAMPLES[name])
            feature("load_example", {"example": name})

        def do_renumber() -> None:
            editor.set_value(renumber(editor.value or ""))
            feature("renumber", {"lines": len((editor.value or "").splitlines())})

        def clear() -> None:
            output.set_text("")
            status.set_text("")
            feature("clear_output")

        with ui.header().classes("items-center"):
            ui.label("MBASIC demo IDE").classes("text-lg")
            ui.space()
            ui.link("usage", "/usage").classes("text-white")

        with ui.row().classes("w-full no-wrap gap-4"):
            with ui.column().classes("w-1/2"):
                editor = (
                    ui.textarea("Program", value=EXAMPLES["Squares"])
                    .classes("w-full font-mono demo-editor")
                    .props("rows=14 outlined")
                )
                with ui.row():
                    ui.button("Run", on_click=run).classes("demo-run")
                    ui.button("Renumber", on_click=do_renumber).props("outline")
                    ui.button("Clear output", on_click=clear).props("outline")
                    with ui.dropdown_button("Examples").props("outline"):
                        for name in EXAMPLES:
                            ui.item(name, on_click=lambda n=name: load_example(n))
            with ui.column().classes("w-1/2"):
                status = ui.label("").classes("demo-status")
                output = ui.label("").classes(
                    "demo-output font-mono whitespace-pre-wrap w-full"
                )
