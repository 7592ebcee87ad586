"""A very small BASIC for the demo: enough to run, count lines and fail usefully.

Numbered lines; statements ``PRINT``, ``LET`` (or a bare assignment), ``IF cond
THEN line``, ``GOTO``, ``FOR ... TO ... [STEP ...]`` / ``NEXT``, ``REM`` and
``END``. Expressions are numbers, strings, variables (``A``, ``N1``, ``A$``),
``+ - * / ^``, comparisons ``= <> < > <= >=``, ``AND``, ``OR``, ``NOT`` and
``INT()``, ``ABS()``, ``SQR()``, ``LEN()``. They are evaluated by walking a
parsed tree, never by ``eval``. A run stops after ``max_steps`` lines or
``max_output`` printed lines, with an error saying so.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["BasicError", "RunResult", "run_program"]

_LINE: Final = re.compile(r"\s*(\d+)\s*(.*)")
_FOR: Final = re.compile(
    r"FOR\s+([A-Z]\w*)\s*=\s*(.+?)\s+TO\s+(.+?)(?:\s+STEP\s+(.+))?$", re.IGNORECASE
)
_IF: Final = re.compile(r"IF\s+(.+?)\s+THEN\s+(\d+)$", re.IGNORECASE)
_ASSIGN: Final = re.compile(r"(?:LET\s+)?([A-Z]\w*\$?)\s*=\s*(.+)$", re.IGNORECASE)

_BINARY: Final[dict[type, Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: lambda left, right: _numbers(left, right) and left * right,
    ast.Div: operator.truediv,
    ast.Pow: lambda left, right: _numbers(left, right) and _power(left, right),
}
_COMPARE: Final[dict[type, Callable[[Any, Any], bool]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCTIONS: Final[dict[str, Callable[[Any], Any]]] = {
    "INT": lambda value: math.floor(value),
    "ABS": abs,
    "SQR": math.sqrt,
    "LEN": len,
}


class BasicError(Exception):
    """A program error, with the BASIC line number it happened on."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line

    def __str__(self) -> str:
        message = super().__str__()
        return message if self.line is None else f"line {self.line}: {message}"


@dataclass
class RunResult:
    """What a run printed and how it went."""

    output: list[str] = field(default_factory=list)
    program_lines: int = 0
    lines_executed: int = 0
    elapsed_ms: int = 0
    error: str | None = None

    @property
    def success(self) -> bool:
        return self.error is None


def run_program(
    source: str, *, max_steps: int = 100_000, max_output: int = 1000
) -> RunResult:
    """Run ``source``; errors are reported in the result, never raised."""
    result = RunResult()
    started = time.perf_counter()

    try:
        program = _parse(source)
        result.program_lines = len(program)
        _Machine(program, result, max_steps, max_output).run()
    except BasicError as error:
        result.error = str(error)
    except (ArithmeticError, TypeError, ValueError, RecursionError) as error:
        result.error = f"{type(error).__name__}: {error}"

    result.elapsed_ms = round((time.perf_counter() - started) * 1000)

    return result


def _parse(source: str) -> dict[int, str]:
    program: dict[int, str] = {}
    for text in source.splitlines():
        if not text.strip():
            continue
        match = _LINE.fullmatch(text)
        if match is None:
            raise BasicError(f"a line needs a number: {text.strip()[:40]!r}")
        program[int(match.group(1))] = match.group(2).strip()

    return dict(sorted(program.items()))


class _Machine:
    def __init__(
        self,
        program: dict[int, str],
        result: RunResult,
        max_steps: int,
        max_output: int,
    ) -> None:
        self.program = program
        self.order = list(program)
        self.result = result
        self.max_steps = max_steps
        self.max_output = max_output
        self.variables: dict[str, Any] = {}
        self.loops: dict[
            str, tuple[int, float, float]
        ] = {}  # var -> (index, end, step)

    def run(self) -> None:
        index = 0
        while index < len(self.order):
            number = self.order[index]
            if self.result.lines_executed >= self.max_steps:
                raise BasicError(f"stopped after {self.max_steps} lines", number)
            self.result.lines_executed += 1
            try:
                jump = self.execute(self.program[number], index)
            except BasicError as error:
                error.line = error.line or number
                raise
            except (ArithmeticError, TypeError, ValueError) as error:
                raise BasicError(f"{type(error).__name__}: {error}", number) from None
            if jump == -1:
                return
            index = index + 1 if jump is None else jump

    def execute(self, statement: str, index: int) -> int | None:
        keyword = statement.split(" ", 1)[0].upper()

        if keyword in ("", "REM"):
            return None
        if keyword in ("END", "STOP"):
            return -1
        if keyword == "PRINT":
            self.print(statement[5:].strip())
            return None
        if keyword == "GOTO":
            return self.target(statement[4:].strip())
        if keyword == "IF":
            return self.branch(statement)
        if keyword == "FOR":
            return self.loop_start(statement, index)
        if keyword == "NEXT":
            return self.loop_next(statement[4:].strip().upper())

        match = _ASSIGN.fullmatch(statement)
        if match is None:
            raise BasicError(f"cannot understand {statement[:40]!r}")
        self.variables[_name(match.group(1))] = self.evaluate(match.group(2))

        return None

    def print(self, arguments: str) -> None:
        if len(self.result.output) >= self.max_output:
            raise BasicError(f"stopped after {self.max_output} printed lines")

        parts = [part for part in _split_print(arguments) if part.strip()]
        self.result.output.append("".join(_show(self.evaluate(part)) for part in parts))

    def branch(self, statement: str) -> int | None:
        match = _IF.fullmatch(statement)
        if match is None:
            raise BasicError("expected IF <condition> THEN <line>")

        return self.target(match.group(2)) if self.evaluate(match.group(1)) else None

    def loop_start(self, statement: str, index: int) -> int | None:
        match = _FOR.fullmatch(statement)
        if match is None:
            raise BasicError("expected FOR <var> = <start> TO <end> [STEP <step>]")

        name = _name(match.group(1))
        step = self.evaluate(match.group(4)) if match.group(4) else 1
        self.variables[name] = self.evaluate(match.group(2))
        self.loops[name] = (index, self.evaluate(match.group(3)), step)

        return None

    def loop_next(self, name: str) -> int | None:
        name = _name(name) if name else next(reversed(self.loops), "")
        if name not in self.loops:
            raise BasicError("NEXT without FOR")

        index, end, step = self.loops[name]
        self.variables[name] += step
        if (step >= 0 and self.variables[name] <= end) or (
            step < 0 and self.variables[name] >= end
        ):
            return index + 1

        del self.loops[name]
        return None

    def target(self, text: str) -> int:
        try:
            return self.order.index(int(text))
        except ValueError:
            raise BasicError(f"no line {text}") from None

    def evaluate(self, expression: str) -> Any:
        try:
            tree = ast.parse(_to_python(expression), mode="eval")
        except SyntaxError:
            raise BasicError(f"bad expression {expression[:40]!r}") from None

        return self.value(tree.body)

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
            return node.value
        if isinstance(node, ast.Name):
            return self.variables.get(node.id, "" if node.id.endswith("_S") else 0)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](self.value(node.left), self.value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.value(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self.value(node.operand)
        if isinstance(node, ast.BoolOp):
            values = [self.value(item) for item in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            compare = _COMPARE.get(type(node.ops[0]))
            if compare is not None:
                return compare(self.value(node.left), self.value(node.comparators[0]))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and len(node.args) == 1
        ):
            return _FUNCTIONS[node.func.id](self.value(node.args[0]))

        raise BasicError("unsupported expression")


def _numbers(left: Any, right: Any) -> bool:
    if isinstance(left, str) or isinstance(right, str):
        raise BasicError("this operator needs numbers")
    return True


def _power(base: float, exponent: float) -> float:
    if abs(exponent) > 64:
        raise BasicError("exponent too large (at most 64)")
    return float(base**exponent)


def _to_python(expression: str) -> str:
    """BASIC operators in Python spelling; string literals left alone."""
    pieces = re.split(r'("[^"]*")', expression)
    for position in range(0, len(pieces), 2):
        piece = pieces[position].upper()
        piece = re.sub(r"([A-Z]\w*)\$", r"\1_S", piece)
        piece = piece.replace("<>", "!=").replace("^", "**")
        piece = re.sub(r"(?<![<>!=])=(?!=)", "==", piece)
        piece = re.sub(r"\bAND\b", " and ", piece)
        piece = re.sub(r"\bOR\b", " or ", piece)
        piece = re.sub(r"\bNOT\b", " not ", piece)
        pieces[position] = piece

    return "".join(pieces).strip()


def _split_print(arguments: str) -> list[str]:
    return re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', arguments)


def _name(text: str) -> str:
    text = text.strip().upper()
    return text[:-1] + "_S" if text.endswith("$") else text


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "-1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
