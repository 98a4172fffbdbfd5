//! Finds where a field path (`boxes[1].image.x1`) sits in RON source text.
//!
//! serde forgets positions once a value is parsed, yet validation errors (a value
//! out of range) must still say line and column. This module skims the text once
//! into a tree of positioned nodes; it understands just enough RON for that
//! (comments, strings, structs, tuples, lists, maps, `Some(..)`), and gives up
//! quietly (returns `None`) on anything it does not follow: positions are a
//! courtesy, the serde parse remains the authority on syntax.

use std::collections::HashMap;

/// 1-based line and column, as editors count them (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Field(String),
    Index(usize),
}

/// A field path such as `boxes[1].image.x1`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }
    pub fn field(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Field(name.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(scenario)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Field(name) if i == 0 => write!(f, "{name}")?,
                Seg::Field(name) => write!(f, ".{name}")?,
                Seg::Index(k) => write!(f, "[{k}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Kind {
    Leaf,
    Fields(HashMap<String, Node>),
    Items(Vec<Node>),
}

#[derive(Debug)]
struct Node {
    pos: Pos,
    kind: Kind,
}

/// Positions of every value in one RON document.
#[derive(Debug)]
pub struct SourceMap {
    root: Option<Node>,
}

impl SourceMap {
    pub fn new(src: &str) -> Self {
        let mut skim = Skim { chars: src.chars().collect(), i: 0, line: 1, col: 1 };
        SourceMap { root: skim.value(0) }
    }

    /// Position of the value at `path`, or of its nearest existing ancestor.
    pub fn locate(&self, path: &FieldPath) -> Option<Pos> {
        let mut node = self.root.as_ref()?;
        for seg in &path.0 {
            let next = match (seg, &node.kind) {
                (Seg::Field(name), Kind::Fields(fields)) => fields.get(name),
                (Seg::Index(k), Kind::Items(items)) => items.get(*k),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        Some(node.pos)
    }
}

/// Deepest nesting the skimmer follows; deeper documents get no positions.
const MAX_DEPTH: usize = 64;

struct Skim {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

impl Skim {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }
    fn pos(&self) -> Pos {
        Pos { line: self.line, col: self.col }
    }

    /// Skips whitespace, `//` line comments and nested `/* */` block comments.
    fn trivia(&mut self) {
        loop {
            match (self.peek(), self.peek_at(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                (Some('/'), Some('*')) => {
                    self.bump();
                    self.bump();
                    let mut depth = 1;
                    while depth > 0 {
                        match (self.bump(), self.peek()) {
                            (None, _) => return,
                            (Some('/'), Some('*')) => {
                                self.bump();
                                depth += 1;
                            }
                            (Some('*'), Some('/')) => {
                                self.bump();
                                depth -= 1;
                            }
                            _ => {}
                        }
                    }
                }
                _ => return,
            }
        }
    }

    fn ident(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '#' {
                s.push(c);
                self.bump();
            } else {
                break;
            }
        }
        s
    }

    /// Skips a string or char literal starting at the quote.
    fn quoted(&mut self, quote: char) {
        self.bump();
        while let Some(c) = self.bump() {
            if c == '\\' {
                self.bump();
            } else if c == quote {
                return;
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.trivia();
        let pos = self.pos();
        let c = self.peek()?;
        if c == '"' || c == '\'' {
            self.quoted(c);
            return Some(Node { pos, kind: Kind::Leaf });
        }
        if c == '(' {
            return self.group(pos, depth);
        }
        if c == '[' {
            return self.list(pos, depth);
        }
        if c == '{' {
            return self.map(pos, depth);
        }
        if c.is_alphabetic() || c == '_' {
            let name = self.ident();
            self.trivia();
            if self.peek() == Some('(') {
                let inner = self.group(pos, depth)?;
                // `Some(x)` is transparent: the path continues into `x`.
                if name == "Some" {
                    if let Kind::Items(mut items) = inner.kind {
                        if items.len() == 1 {
                            return items.pop();
                        }
                        return Some(Node { pos, kind: Kind::Items(items) });
                    }
                    return Some(inner);
                }
                return Some(inner);
            }
            return Some(Node { pos, kind: Kind::Leaf });
        }
        // A number or anything else: read to the next delimiter.
        while let Some(c) = self.peek() {
            if c == ',' || c == ')' || c == ']' || c == '}' || c.is_whitespace() || c == '/' {
                break;
            }
            self.bump();
        }
        Some(Node { pos, kind: Kind::Leaf })
    }

    /// `( name: value, ... )` or `( value, ... )`, starting at `(`.
    fn group(&mut self, pos: Pos, depth: usize) -> Option<Node> {
        self.bump();
        let mut fields = HashMap::new();
        let mut items = Vec::new();
        loop {
            self.trivia();
            match self.peek()? {
                ')' => {
                    self.bump();
                    break;
                }
                ',' => {
                    self.bump();
                    continue;
                }
                _ => {}
            }
            // A field is an identifier followed by ':'; look ahead without consuming.
            let save = (self.i, self.line, self.col);
            let c = self.peek()?;
            let mut is_field = false;
            if c.is_alphabetic() || c == '_' {
                let name = self.ident();
                self.trivia();
                if self.peek() == Some(':') {
                    self.bump();
                    let v = self.value(depth + 1)?;
                    fields.insert(name.trim_start_matches("r#").to_string(), v);
                    is_field = true;
                }
            }
            if !is_field {
                (self.i, self.line, self.col) = save;
                items.push(self.value(depth + 1)?);
            }
        }
        let kind = if fields.is_empty() && !items.is_empty() { Kind::Items(items) } else { Kind::Fields(fields) };
        Some(Node { pos, kind })
    }

    fn list(&mut self, pos: Pos, depth: usize) -> Option<Node> {
        self.bump();
        let mut items = Vec::new();
        loop {
            self.trivia();
            match self.peek()? {
                ']' => {
                    self.bump();
                    break;
                }
                ',' => {
                    self.bump();
                }
                _ => items.push(self.value(depth + 1)?),
            }
        }
        Some(Node { pos, kind: Kind::Items(items) })
    }

    /// `{ key: value, ... }`: positions of values are kept by key text.
    fn map(&mut self, pos: Pos, depth: usize) -> Option<Node> {
        self.bump();
        let mut fields = HashMap::new();
        loop {
            self.trivia();
            match self.peek()? {
                '}' => {
                    self.bump();
                    break;
                }
                ',' => {
                    self.bump();
                }
                _ => {
                    let start = self.i;
                    self.value(depth + 1)?;
                    let key: String = self.chars[start..self.i].iter().collect();
                    self.trivia();
                    if self.peek() != Some(':') {
                        return None;
                    }
                    self.bump();
                    let v = self.value(depth + 1)?;
                    fields.insert(key.trim_matches('"').to_string(), v);
                }
            }
        }
        Some(Node { pos, kind: Kind::Fields(fields) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segs: &[&str]) -> FieldPath {
        let mut p = FieldPath::root();
        for s in segs {
            p = match s.parse::<usize>() {
                Ok(i) => p.index(i),
                Err(_) => p.field(s),
            };
        }
        p
    }

    const SRC: &str = "// header comment\nScenario(\n    name: \"a\", /* block /* nested */ */\n    boxes: [\n        (class: Car, image: (x1: 0.4, y1: 0.5, x2: 0.6, y2: 0.7)),\n        (class: Car, road: Some((lane: 1, ahead_m: 18.0))),\n    ],\n)\n";

    #[test]
    fn finds_nested_fields_and_list_items() {
        let map = SourceMap::new(SRC);
        assert_eq!(map.locate(&path(&["name"])), Some(Pos { line: 3, col: 11 }));
        assert_eq!(map.locate(&path(&["boxes", "0", "image", "x2"])), Some(Pos { line: 5, col: 52 }));
        assert_eq!(map.locate(&path(&["boxes", "1"])), Some(Pos { line: 6, col: 9 }));
        // `Some(..)` is transparent.
        assert_eq!(map.locate(&path(&["boxes", "1", "road", "ahead_m"])), Some(Pos { line: 6, col: 52 }));
    }

    #[test]
    fn missing_field_falls_back_to_nearest_ancestor() {
        let map = SourceMap::new(SRC);
        assert_eq!(map.locate(&path(&["boxes", "0", "road"])), Some(Pos { line: 5, col: 9 }));
        assert_eq!(map.locate(&path(&["seed"])), Some(Pos { line: 2, col: 1 }));
    }

    #[test]
    fn unterminated_input_gives_no_position_and_no_panic() {
        for src in ["Scenario(", "Scenario(name: \"x", "[[[[", "/* open", "", "{a: }"] {
            let _ = SourceMap::new(src).locate(&path(&["name"]));
        }
    }

    #[test]
    fn path_display_matches_user_syntax() {
        assert_eq!(path(&["boxes", "1", "image", "x1"]).to_string(), "boxes[1].image.x1");
        assert_eq!(FieldPath::root().to_string(), "(scenario)");
    }
}
