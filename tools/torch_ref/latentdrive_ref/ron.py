"""A small reader for the RON that `manifest.ron` is written in (ron 0.12, `struct_names`).

Values map to Python as: `Name(field: v, …)` → `Struct` (a dict with `.name`),
`Name(v, …)` → `Variant` (an enum's tuple variant, e.g. `Group(8)`), a bare identifier
→ `str` (a unit variant, e.g. `Channel`), `Some(v)` → v, `None` → None, `[…]` → list,
`(…)` → tuple, strings, numbers and booleans as themselves. Enough for manifests; not a
general RON implementation (no maps, no raw strings, no implicit-some extension).
"""

from __future__ import annotations

from dataclasses import dataclass


class Struct(dict):
    """A named struct: its fields as a dict, its RON name in `.name`."""

    def __init__(self, name: str, fields: dict):
        super().__init__(fields)
        self.name = name


@dataclass(frozen=True)
class Variant:
    """A tuple variant such as `Group(8)`."""

    name: str
    args: tuple


class RonError(ValueError):
    pass


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0

    def error(self, msg: str) -> RonError:
        line = self.s.count("\n", 0, self.i) + 1
        col = self.i - (self.s.rfind("\n", 0, self.i) + 1) + 1
        return RonError(f"{line}:{col}: {msg}")

    def skip(self) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i)
                if end < 0:
                    raise self.error("unterminated comment")
                self.i = end + 2
            else:
                return

    def peek(self) -> str:
        self.skip()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, c: str) -> None:
        if self.peek() != c:
            raise self.error(f"expected {c!r}, found {self.peek()!r}")
        self.i += 1

    def ident(self) -> str:
        self.skip()
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] == "_"):
            j += 1
        if j == self.i:
            raise self.error(f"expected an identifier, found {self.peek()!r}")
        name, self.i = self.s[self.i : j], j
        return name

    def value(self):
        c = self.peek()
        if c == "[":
            return self.seq("[", "]")
        if c == "(":
            return tuple(self.seq("(", ")"))
        if c == '"':
            return self.string()
        if c == "-" or c == "+" or c.isdigit():
            return self.number()
        if c.isalpha() or c == "_":
            name = self.ident()
            if name in ("true", "false"):
                return name == "true"
            if name == "None":
                return None
            if self.peek() != "(":
                return name
            return self.named(name)
        raise self.error(f"unexpected {c!r}")

    def named(self, name: str):
        self.expect("(")
        # A struct if the first item is `ident:` (and not `ident::`).
        save = self.i
        is_struct = False
        if self.peek().isalpha() or self.peek() == "_":
            self.ident()
            is_struct = self.peek() == ":"
        self.i = save
        if is_struct:
            fields = {}
            while self.peek() != ")":
                key = self.ident()
                self.expect(":")
                fields[key] = self.value()
                if self.peek() == ",":
                    self.i += 1
            self.expect(")")
            return Struct(name, fields)
        args = []
        while self.peek() != ")":
            args.append(self.value())
            if self.peek() == ",":
                self.i += 1
        self.expect(")")
        if name == "Some":
            if len(args) != 1:
                raise self.error("Some takes one value")
            return args[0]
        return Variant(name, tuple(args))

    def seq(self, open_: str, close: str) -> list:
        self.expect(open_)
        items = []
        while self.peek() != close:
            items.append(self.value())
            if self.peek() == ",":
                self.i += 1
        self.expect(close)
        return items

    def string(self) -> str:
        self.expect('"')
        out = []
        escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0", "'": "'"}
        while True:
            if self.i >= len(self.s):
                raise self.error("unterminated string")
            c = self.s[self.i]
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                e = self.s[self.i]
                self.i += 1
                if e == "u":
                    end = self.s.index("}", self.i)
                    out.append(chr(int(self.s[self.i + 1 : end], 16)))
                    self.i = end + 1
                elif e in escapes:
                    out.append(escapes[e])
                else:
                    raise self.error(f"unknown escape \\{e}")
            else:
                out.append(c)

    def number(self):
        self.skip()
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] in "+-._"):
            j += 1
        text, self.i = self.s[self.i : j].replace("_", ""), j
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise self.error(f"bad number {text!r}") from None


def loads(text: str):
    """Parses one RON value (the whole text)."""
    p = _Parser(text)
    v = p.value()
    if p.peek() != "":
        raise p.error("trailing characters")
    return v


def load(path) -> object:
    with open(path, encoding="utf-8") as f:
        return loads(f.read())
