"""The scenario file format (YAML) and its loader, which names the file, line and field
of every mistake (`demo.yaml:14: scenarios[2].turns[0].expect.intnet: unknown field`).

```yaml
tenant: demo
scenarios:
  - name: order-status            # unique across the files of one run
    language: en                  # en | zh
    tags: [order-status]
    turns:
      - say: ["status of order #1002?", "has 1002 shipped?"]   # one text or paraphrases
        channel: web              # optional (schemas.Channel), default web
        metadata: {}              # optional str -> str
        expect: {intent: order_status, skill: order_status, args: {order: "1002"}}
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from schemas import Channel

FieldPath = tuple[str | int, ...]


def _one_or_many(value: object) -> object:
    # `say: "hi"` and `say: ["hi", "hello"]` are both allowed: a lone string is one item.
    return [value] if isinstance(value, str) else value


def _stringify(value: object) -> object:
    # YAML reads `{order: 1002}` as an int; the pipeline's values are strings.
    if isinstance(value, dict):
        return {k: str(v) if isinstance(v, int | float) else v for k, v in value.items()}
    return value


def _sources(value: object) -> object:
    # Checked here so a wrong value gets one message, not one per member of the union.
    if value is None or isinstance(value, bool):
        return value
    value = _one_or_many(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("expected true, false or a list of source names")


Text = Annotated[str, Field(min_length=1)]
OneOrMany = Annotated[list[Text], BeforeValidator(_one_or_many), Field(min_length=1)]
StrMap = Annotated[dict[str, str], BeforeValidator(_stringify)]
Sources = Annotated[bool | list[str] | None, BeforeValidator(_sources)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    """What the bot must do on one turn; every key is optional."""

    intent: OneOrMany | None = None
    skill: OneOrMany | None = Field(default=None, description='"none": no skill ran')
    args: StrMap | None = Field(default=None, description="a subset of the skill's arguments")
    confirmation: bool | None = None
    handoff: bool | None = None
    language: str | None = None
    contains_any: OneOrMany | None = None
    contains: OneOrMany | None = None
    not_contains: OneOrMany | None = None
    sources: Sources = None
    no_reply: bool | None = None


class ScenarioTurn(_Strict):
    """One customer message (or its paraphrases) and what should follow it."""

    say: OneOrMany
    channel: Channel = Channel.WEB
    metadata: StrMap = Field(default_factory=dict)
    expect: Expect | None = None

    def text(self, run: int) -> str:
        """The variant run `run` says: runs cycle through the paraphrases."""
        return self.say[run % len(self.say)]


class Scenario(_Strict):
    """One conversation: a customer's turns in order."""

    name: Text
    language: Literal["en", "zh"]
    tags: list[str] = Field(default_factory=list)
    turns: list[ScenarioTurn] = Field(min_length=1)


class ScenarioFile(_Strict):
    """A tenant's scenarios, as one YAML file holds them."""

    tenant: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    scenarios: list[Scenario] = Field(min_length=1)


@dataclass(frozen=True)
class Case:
    """A loaded scenario with the tenant it talks to and where it was written."""

    scenario: Scenario
    tenant: str
    file: Path
    line: int


class ScenarioError(ValueError):
    """A malformed scenario file; `problems` are `file:line: field: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_files(paths: list[Path]) -> list[Case]:
    """Every scenario of the files, in order; ScenarioError lists every problem found."""
    cases: list[Case] = []
    problems: list[str] = []
    for path in paths:
        try:
            cases.extend(load_file(path))
        except ScenarioError as err:
            problems.extend(err.problems)
    problems.extend(_duplicate_names(cases))
    if problems:
        raise ScenarioError(problems)
    return cases


def load_file(path: Path) -> list[Case]:
    """The scenarios of one file (ScenarioError if it is malformed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError([f"{path}: cannot read: {err}"]) from err
    data, lines = parse_yaml(text, str(path))
    try:
        parsed = ScenarioFile.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_problems(err, lines, str(path))) from err
    return [
        Case(s, parsed.tenant, path, lines.get(("scenarios", i), 1))
        for i, s in enumerate(parsed.scenarios)
    ]


def parse_yaml(text: str, name: str) -> tuple[Any, dict[FieldPath, int]]:
    """The document and the line (1-based) of every key and item in it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError([f"{name}:1: empty file"])
        lines: dict[FieldPath, int] = {(): node.start_mark.line + 1}
        duplicates: list[str] = []
        _index(node, (), lines, duplicates)
        if duplicates:
            raise ScenarioError([f"{name}:{d}" for d in duplicates])
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise ScenarioError([f"{name}:{line}: invalid YAML: {err.problem or err}"]) from err
    finally:
        loader.dispose()


def _index(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int], dups: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            where = (*path, key)
            if where in lines:
                dups.append(f"{key_node.start_mark.line + 1}: {dotted(where)}: duplicate key")
            lines[where] = key_node.start_mark.line + 1
            _index(value_node, where, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, dups)


def dotted(path: FieldPath) -> str:
    """`scenarios[2].turns[0].expect` for ("scenarios", 2, "turns", 0, "expect")."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _problems(err: ValidationError, lines: dict[FieldPath, int], name: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for error in err.errors():
        # pydantic adds markers such as "[key]" to a loc; they are not the file's fields.
        path = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("[")))
        line = _line(path, lines)
        found.append((line, f"{name}:{line}: {dotted(path) or '(top)'}: {_message(error)}"))
    return [text for _, text in sorted(set(found))]


def _line(path: FieldPath, lines: dict[FieldPath, int]) -> int:
    # A missing field has no line of its own: the line of its nearest written parent.
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _message(error: Any) -> str:
    kind, msg = error["type"], str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "missing field"
    return msg.removeprefix("Value error, ")


def _duplicate_names(cases: list[Case]) -> list[str]:
    first: dict[str, Case] = {}
    problems: list[str] = []
    for case in cases:
        name = case.scenario.name
        if name in first:
            seen = first[name]
            problems.append(
                f"{case.file}:{case.line}: name: duplicate scenario name {name!r} "
                f"(first at {seen.file}:{seen.line})"
            )
        else:
            first[name] = case
    return problems
