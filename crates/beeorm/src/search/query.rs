//! The common query language, parsed once and rendered by each backend.
//!
//! Grammar (glue branch implements `parse`; the AST below is the contract):
//! * words separated by spaces: all must match (`rust async`);
//! * `a | b`: either (binds tighter than the implicit AND: `rust async | tokio`
//!   = `rust AND (async OR tokio)`);
//! * `"several words"`: a phrase (the words in that order, adjacent);
//! * `-word`, `-"phrase"`, `-( … )`: must not match (a query of only negations is an error);
//! * `pre*`: any word starting with `pre` (at least 2 letters before `*`);
//! * `( … )`: grouping;
//! * `@field:word`, `@field:( … )`, `@field:"phrase"`: only in the text field `field`.
//!
//! A word is split into terms the way the index tokenises text: runs of Unicode
//! letters and digits, lower-cased; a word with several runs (`e-mail`) is a phrase
//! of them. Anything else (unbalanced quotes or parentheses, a dangling `|`, an
//! empty group, a lone `*`, an unknown field) is [`crate::Error::SearchQuery`] with
//! the position.

/// A parsed query. Terms are already tokenised and lower-cased.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QueryNode {
    /// One term.
    Term(String),
    /// Terms starting with this prefix.
    Prefix(String),
    /// Terms in this order, adjacent (at least 2).
    Phrase(Vec<String>),
    /// All must match (at least one positive member).
    And(Vec<QueryNode>),
    /// Any must match.
    Or(Vec<QueryNode>),
    /// Must not match (only inside `And`).
    Not(Box<QueryNode>),
    /// Only in the text field at this position of [`super::SearchIndex::fields`].
    Field(usize, Box<QueryNode>),
}

use super::{SearchFieldKind, SearchIndex};
use crate::{Error, Result};

/// The terms of `text` as every index sees them: runs of Unicode letters and digits,
/// lower-cased. Backends whose engine tokenises differently index these terms (joined
/// by spaces) instead of the raw text, so both engines agree on what a word is.
pub(crate) fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|run| !run.is_empty())
        .map(str::to_lowercase)
}

/// Parses `text` in the query language (see the module docs); `Ok(None)` for a text
/// with nothing to match on (empty or only spaces): every document matches.
pub(crate) fn parse(text: &str, index: &SearchIndex) -> Result<Option<QueryNode>> {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser {
        text,
        chars: &chars,
        pos: 0,
        index,
    };
    p.skip_spaces();
    if p.at_end() {
        return Ok(None);
    }
    let node = p.and_group(None)?;
    match node {
        Some(node) => Ok(Some(node)),
        None => Err(p.error(0, "the query has no letters or digits to search for")),
    }
}

/// Characters with a meaning of their own outside a phrase.
fn is_special(c: char) -> bool {
    matches!(c, '|' | '(' | ')' | '"' | '@')
}

struct Parser<'a> {
    text: &'a str,
    chars: &'a [char],
    pos: usize,
    index: &'a SearchIndex,
}

impl Parser<'_> {
    fn error(&self, position: usize, reason: impl Into<String>) -> Error {
        Error::SearchQuery {
            query: self.text.to_string(),
            position,
            reason: reason.into(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// Members up to the end of the text (`open: None`) or up to the `)` that closes
    /// the `(` at `open`, all of which must match. `None` when every member was
    /// punctuation only (nothing to search for).
    fn and_group(&mut self, open: Option<usize>) -> Result<Option<QueryNode>> {
        let mut members = Vec::new();
        let mut positive = false;
        let mut negative_at = None;
        loop {
            self.skip_spaces();
            match self.peek() {
                None => {
                    if let Some(open) = open {
                        return Err(self.error(open, "`(` is never closed"));
                    }
                    break;
                }
                Some(')') => {
                    if open.is_none() {
                        return Err(self.error(self.pos, "`)` closes nothing"));
                    }
                    self.pos += 1;
                    break;
                }
                Some('|') => {
                    return Err(self.error(self.pos, "`|` needs a word on each side"));
                }
                Some(_) => {
                    let start = self.pos;
                    if let Some(node) = self.or_expr()? {
                        if matches!(node, QueryNode::Not(_)) {
                            negative_at.get_or_insert(start);
                        } else {
                            positive = true;
                        }
                        members.push(node);
                    }
                }
            }
        }
        if members.is_empty() {
            if let Some(open) = open {
                return Err(self.error(open, "`( )` holds nothing to search for"));
            }
            return Ok(None);
        }
        if !positive {
            return Err(self.error(
                negative_at.unwrap_or(0),
                "a query (or group) cannot only exclude: add a word it must match",
            ));
        }
        Ok(Some(if members.len() == 1 {
            members.remove(0)
        } else {
            QueryNode::And(members)
        }))
    }

    /// `unary ( '|' unary )*`.
    fn or_expr(&mut self) -> Result<Option<QueryNode>> {
        let first_at = self.pos;
        let first = self.unary()?;
        let mut alternatives = vec![(first_at, first)];
        loop {
            let save = self.pos;
            self.skip_spaces();
            if self.peek() != Some('|') {
                self.pos = save;
                break;
            }
            let bar = self.pos;
            self.pos += 1;
            self.skip_spaces();
            if self.at_end() || matches!(self.peek(), Some('|' | ')')) {
                return Err(self.error(bar, "`|` needs a word on each side"));
            }
            let at = self.pos;
            alternatives.push((at, self.unary()?));
        }
        if alternatives.len() == 1 {
            return Ok(alternatives.pop().and_then(|(_, n)| n));
        }
        let mut members = Vec::new();
        for (at, node) in alternatives {
            match node {
                Some(QueryNode::Not(_)) => {
                    return Err(self.error(at, "`-` cannot be one side of `|`"));
                }
                Some(node) => members.push(node),
                None => {}
            }
        }
        Ok(match members.len() {
            0 => None,
            1 => members.pop(),
            _ => Some(QueryNode::Or(members)),
        })
    }

    /// `'-' primary | primary`.
    fn unary(&mut self) -> Result<Option<QueryNode>> {
        if self.peek() == Some('-') {
            let at = self.pos;
            self.pos += 1;
            match self.peek() {
                None => return Err(self.error(at, "`-` needs a word right after it")),
                Some(c) if c.is_whitespace() || c == '|' || c == ')' || c == '-' => {
                    return Err(self.error(at, "`-` needs a word right after it"));
                }
                _ => {}
            }
            return match self.primary(false)? {
                Some(node) => Ok(Some(QueryNode::Not(Box::new(node)))),
                None => Err(self.error(at, "`-` needs a word with letters or digits")),
            };
        }
        self.primary(false)
    }

    /// A group, a phrase, a field restriction or a word.
    fn primary(&mut self, in_field: bool) -> Result<Option<QueryNode>> {
        let at = self.pos;
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                self.and_group(Some(at))
            }
            Some('"') => self.phrase(),
            Some('@') => {
                if in_field {
                    return Err(self.error(at, "a field restriction cannot hold another one"));
                }
                self.field()
            }
            Some(c) if c == ')' || c == '|' || c.is_whitespace() => {
                Err(self.error(at, format!("expected a word, found `{c}`")))
            }
            Some(_) => self.word(),
            None => Err(self.error(at, "expected a word, found the end of the query")),
        }
    }

    fn phrase(&mut self) -> Result<Option<QueryNode>> {
        let open = self.pos;
        self.pos += 1;
        let start = self.pos;
        while self.peek().is_some_and(|c| c != '"') {
            self.pos += 1;
        }
        if self.at_end() {
            return Err(self.error(open, "`\"` is never closed"));
        }
        let inner: String = self.chars[start..self.pos].iter().collect();
        self.pos += 1;
        let mut terms: Vec<String> = tokens(&inner).collect();
        match terms.len() {
            0 => Err(self.error(open, "the phrase holds no letters or digits")),
            1 => Ok(terms.pop().map(QueryNode::Term)),
            _ => Ok(Some(QueryNode::Phrase(terms))),
        }
    }

    /// `@field:primary`, `field` a text field of the index.
    fn field(&mut self) -> Result<Option<QueryNode>> {
        let at = self.pos;
        self.pos += 1;
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if name.is_empty() || self.peek() != Some(':') {
            return Err(self.error(at, "a field restriction is `@field:word`"));
        }
        self.pos += 1;
        let position = match self.index.field(&name) {
            Some((i, f)) if f.kind == SearchFieldKind::Text => i,
            Some(_) => {
                return Err(Error::SearchField {
                    index: self.index.name.clone(),
                    field: name,
                    reason: "`@field:` needs a text field; filter other fields with \
                             SearchQuery::range or SearchQuery::tags"
                        .into(),
                })
            }
            None => {
                return Err(Error::SearchField {
                    index: self.index.name.clone(),
                    field: name,
                    reason: "the index has no such field".into(),
                })
            }
        };
        match self.peek() {
            None => Err(self.error(at, "`@field:` needs a word right after it")),
            Some(c) if c.is_whitespace() => {
                Err(self.error(at, "`@field:` needs a word right after it"))
            }
            _ => Ok(self
                .primary(true)?
                .map(|node| QueryNode::Field(position, Box::new(node)))),
        }
    }

    /// A bare word, split into terms the way the index splits text; `word*` is a
    /// prefix. `None` for punctuation only.
    fn word(&mut self) -> Result<Option<QueryNode>> {
        let at = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !is_special(c))
        {
            self.pos += 1;
        }
        let raw: String = self.chars[at..self.pos].iter().collect();
        let (body, prefix) = match raw.strip_suffix('*') {
            Some(body) => (body, true),
            None => (raw.as_str(), false),
        };
        if body.contains('*') {
            return Err(self.error(at, "`*` can only end a word (`pre*`)"));
        }
        let mut terms: Vec<String> = tokens(body).collect();
        if prefix {
            return match terms.as_slice() {
                [one] if one.chars().count() >= 2 => Ok(terms.pop().map(QueryNode::Prefix)),
                [_] | [] => {
                    Err(self.error(at, "a prefix needs at least 2 letters or digits before `*`"))
                }
                _ => Err(self.error(at, "a prefix (`pre*`) must be one word")),
            };
        }
        Ok(match terms.len() {
            0 => None,
            1 => terms.pop().map(QueryNode::Term),
            _ => Some(QueryNode::Phrase(terms)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::SearchField;

    fn index() -> SearchIndex {
        let f = |name: &str, kind| SearchField {
            name: name.into(),
            kind,
            sortable: false,
        };
        SearchIndex {
            name: "books".into(),
            pool: "default".into(),
            fields: vec![
                f("title", SearchFieldKind::Text),
                f("age", SearchFieldKind::Numeric),
                f("body", SearchFieldKind::Text),
            ],
        }
    }

    fn ok(text: &str) -> Option<QueryNode> {
        parse(text, &index()).unwrap()
    }

    fn err(text: &str) -> (usize, String) {
        match parse(text, &index()) {
            Err(Error::SearchQuery {
                position, reason, ..
            }) => (position, reason),
            other => panic!("{text:?}: expected a query error, got {other:?}"),
        }
    }

    fn t(s: &str) -> QueryNode {
        QueryNode::Term(s.into())
    }

    #[test]
    fn words_are_lower_cased_terms_that_all_must_match() {
        assert_eq!(ok(""), None);
        assert_eq!(ok("   "), None);
        assert_eq!(ok("Rust"), Some(t("rust")));
        assert_eq!(
            ok(" Rust  ASYNC "),
            Some(QueryNode::And(vec![t("rust"), t("async")]))
        );
        assert_eq!(ok("کتاب"), Some(t("کتاب")));
    }

    #[test]
    fn or_binds_tighter_than_and() {
        assert_eq!(
            ok("rust async | tokio"),
            Some(QueryNode::And(vec![
                t("rust"),
                QueryNode::Or(vec![t("async"), t("tokio")])
            ]))
        );
        assert_eq!(
            ok("a|b|c"),
            Some(QueryNode::Or(vec![t("a"), t("b"), t("c")]))
        );
    }

    #[test]
    fn phrases_prefixes_groups_negations_and_fields() {
        assert_eq!(
            ok("\"Hello, World\""),
            Some(QueryNode::Phrase(vec!["hello".into(), "world".into()]))
        );
        assert_eq!(ok("\"one\""), Some(t("one")));
        assert_eq!(
            ok("e-mail"),
            Some(QueryNode::Phrase(vec!["e".into(), "mail".into()]))
        );
        assert_eq!(ok("Pro*"), Some(QueryNode::Prefix("pro".into())));
        assert_eq!(
            ok("rust -(java | go)"),
            Some(QueryNode::And(vec![
                t("rust"),
                QueryNode::Not(Box::new(QueryNode::Or(vec![t("java"), t("go")])))
            ]))
        );
        assert_eq!(
            ok("@body:rust guide"),
            Some(QueryNode::And(vec![
                QueryNode::Field(2, Box::new(t("rust"))),
                t("guide")
            ]))
        );
        assert_eq!(
            ok("@title:\"a b\""),
            Some(QueryNode::Field(
                0,
                Box::new(QueryNode::Phrase(vec!["a".into(), "b".into()]))
            ))
        );
    }

    #[test]
    fn punctuation_only_words_are_skipped_but_not_a_whole_query() {
        assert_eq!(
            ok("rust & tokio"),
            Some(QueryNode::And(vec![t("rust"), t("tokio")]))
        );
        assert_eq!(
            err("&& !!").1,
            "the query has no letters or digits to search for"
        );
    }

    #[test]
    fn bad_syntax_is_an_error_with_its_position() {
        assert_eq!(err("\"open phrase").0, 0);
        assert_eq!(err("rust (async").0, 5);
        assert_eq!(err("rust)").0, 4);
        assert_eq!(err("| rust").0, 0);
        assert_eq!(err("rust |").0, 5);
        assert_eq!(err("a || b").0, 2);
        assert_eq!(err("()").0, 0);
        assert_eq!(err("-rust").0, 0);
        assert_eq!(err("rust - java").0, 5);
        assert_eq!(err("a | -b").0, 4);
        assert_eq!(err("p*").0, 0);
        assert_eq!(err("*").0, 0);
        assert_eq!(err("a*b").0, 0);
        assert_eq!(err("e-ma*").0, 0);
        assert_eq!(err("@title rust").0, 0);
        assert_eq!(err("@title: rust").0, 0);
        assert_eq!(err("@title:@body:x").0, 7);
        assert_eq!(err("\"!!\"").0, 0);
    }

    #[test]
    fn field_restrictions_need_a_text_field_of_the_index() {
        for (text, field) in [("@nope:x", "nope"), ("@age:x", "age")] {
            match parse(text, &index()) {
                Err(Error::SearchField {
                    field: f, index, ..
                }) => {
                    assert_eq!((f.as_str(), index.as_str()), (field, "books"))
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn tokens_are_runs_of_letters_and_digits() {
        let v: Vec<String> = tokens("Snake_case, e-mail 42x مرتضی").collect();
        assert_eq!(v, ["snake", "case", "e", "mail", "42x", "مرتضی"]);
    }
}
