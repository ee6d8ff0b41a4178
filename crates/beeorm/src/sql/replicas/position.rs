//! A primary's replication position, as the servers report it, and the one question
//! read routing asks of it: has this replica applied everything up to there?
//!
//! - MariaDB: a GTID position, `domain-server-seq` per replication domain, joined by
//!   `,` (`@@gtid_binlog_pos` on the primary, `@@gtid_slave_pos` on a replica). Within a
//!   domain sequence numbers only grow, so a replica has applied a position when, for
//!   every domain of the position, its own sequence number is at least as large.
//! - PostgreSQL: a WAL location (`pg_current_wal_lsn()` on the primary,
//!   `pg_last_wal_replay_lsn()` on a standby), written `X/Y` (two hexadecimal halves of
//!   a 64-bit byte position).

use std::fmt;

/// Where a primary was, or how far a replica has applied its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    /// MariaDB: `(domain, server, sequence)` per domain, sorted by domain.
    Gtid(Vec<(u32, u32, u64)>),
    /// PostgreSQL: a WAL byte position.
    Lsn(u64),
}

impl Position {
    /// Parses a MariaDB GTID position (`0-1-100,1-2-7`; empty: nothing replicated).
    pub(crate) fn parse_gtid(text: &str) -> Option<Position> {
        let mut domains = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.splitn(3, '-');
            let domain = it.next()?.parse().ok()?;
            let server = it.next()?.parse().ok()?;
            let seq = it.next()?.parse().ok()?;
            domains.push((domain, server, seq));
        }
        domains.sort_unstable_by_key(|d| d.0);
        domains.dedup_by_key(|d| d.0);
        Some(Position::Gtid(domains))
    }

    /// Parses a PostgreSQL LSN (`16/B374D848`).
    pub(crate) fn parse_lsn(text: &str) -> Option<Position> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Position::Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }

    /// Whether a server at `self` has applied everything up to `target`. Positions of
    /// different kinds never cover each other.
    pub(crate) fn covers(&self, target: &Position) -> bool {
        match (self, target) {
            (Position::Lsn(a), Position::Lsn(b)) => a >= b,
            (Position::Gtid(have), Position::Gtid(want)) => want.iter().all(|(d, _, seq)| {
                have.binary_search_by_key(d, |x| x.0)
                    .is_ok_and(|i| have[i].2 >= *seq)
            }),
            _ => false,
        }
    }

    /// The smallest position that covers both (per domain the larger sequence).
    pub(crate) fn merge(&mut self, other: &Position) {
        match (self, other) {
            (Position::Lsn(a), Position::Lsn(b)) => *a = (*a).max(*b),
            (Position::Gtid(have), Position::Gtid(more)) => {
                for g in more {
                    match have.binary_search_by_key(&g.0, |x| x.0) {
                        Ok(i) if have[i].2 < g.2 => have[i] = *g,
                        Ok(_) => {}
                        Err(i) => have.insert(i, *g),
                    }
                }
            }
            (this, other) => *this = other.clone(),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Lsn(lsn) => write!(f, "{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF),
            Position::Gtid(domains) => {
                for (i, (d, s, n)) in domains.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{d}-{s}-{n}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions_parse_print_and_compare_per_domain() {
        let p = Position::parse_gtid("1-2-7,0-1-100").unwrap();
        assert_eq!(p.to_string(), "0-1-100,1-2-7");
        let ahead = Position::parse_gtid("0-1-101,1-2-7").unwrap();
        assert!(ahead.covers(&p));
        assert!(!p.covers(&ahead));
        // A domain the replica has never seen is not applied.
        assert!(!Position::parse_gtid("0-1-500").unwrap().covers(&p));
        // The empty position is covered by anything, and covers only itself.
        let empty = Position::parse_gtid("").unwrap();
        assert!(p.covers(&empty));
        assert!(!empty.covers(&p));
        assert!(Position::parse_gtid("0-1").is_none());
        assert!(Position::parse_gtid("0-x-1").is_none());
    }

    #[test]
    fn lsns_parse_print_and_compare() {
        let a = Position::parse_lsn("16/B374D848").unwrap();
        assert_eq!(a, Position::Lsn(0x16_B374_D848));
        assert_eq!(a.to_string(), "16/B374D848");
        let b = Position::parse_lsn("17/0").unwrap();
        assert!(b.covers(&a) && !a.covers(&b) && a.covers(&a));
        assert!(Position::parse_lsn("16").is_none());
        assert!(Position::parse_lsn("G/0").is_none());
        assert!(!a.covers(&Position::parse_gtid("0-1-1").unwrap()));
    }

    #[test]
    fn merging_keeps_the_larger_position_per_domain() {
        let mut p = Position::parse_gtid("0-1-100,2-1-3").unwrap();
        p.merge(&Position::parse_gtid("0-1-90,1-5-4").unwrap());
        assert_eq!(p.to_string(), "0-1-100,1-5-4,2-1-3");
        let mut l = Position::Lsn(5);
        l.merge(&Position::Lsn(9));
        l.merge(&Position::Lsn(7));
        assert_eq!(l, Position::Lsn(9));
    }
}
