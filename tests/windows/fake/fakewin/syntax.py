"""netsh's command-line syntax and its error texts, shared by the fake's contexts."""

from __future__ import annotations

SYNTAX = "The syntax supplied for this command is not valid. Check help for the correct syntax."
NOT_FOUND = "The following command was not found: {line}."
EXISTS = "The object already exists."
ELEMENT = "Element not found."
FILENAME = "The filename, directory name, or volume label syntax is incorrect."
ELEVATION = "The requested operation requires elevation (Run as administrator)."
ESSENTIAL = (
    "One or more essential parameters were not entered.\n"
    "Verify the required parameters, and reenter them."
)
INCORRECT = "The parameter is incorrect."
NO_RULES = "No rules match the specified criteria."


class Refused(Exception):
    def __init__(self, text: str, usage: str = "") -> None:
        super().__init__(text)
        self.lines = text.split("\n") + (["", f"Usage: {usage}"] if usage else [])


def tokenize(line: str) -> list[str]:
    tokens, current, quoted = [], "", False
    for char in line:
        if char == '"':
            quoted = not quoted
            current += char
        elif char.isspace() and not quoted:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += char
    if quoted:
        raise Refused(SYNTAX)
    return [*tokens, current] if current else tokens


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if '"' in value:
        raise Refused(SYNTAX)
    return value


def bind(
    words: list[str], params: list[str], required: list[str], flags: tuple[str, ...] = ()
) -> dict[str, str]:
    usage = " ".join(f"[{p}=]<value>" for p in params)
    values: dict[str, str] = {}
    for word in words:
        tag, equals, value = word.partition("=")
        if equals and '"' not in tag:
            if tag.lower() not in params:
                raise Refused(SYNTAX, usage)
            values[tag.lower()] = unquote(value)
        elif word.lower() in flags:
            values[word.lower()] = "yes"
        else:
            free = [p for p in params if p not in values]
            if not free:
                raise Refused(SYNTAX, usage)
            values[free[0]] = unquote(word)
    if any(name not in values for name in required):
        raise Refused(ESSENTIAL)
    return values
