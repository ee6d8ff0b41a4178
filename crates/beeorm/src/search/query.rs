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
