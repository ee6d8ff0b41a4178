//! The health checks of a pool's replicas: one task per pool, every
//! `check_interval`, all replicas checked concurrently, each check bounded by the
//! interval (at least 500 ms). The task holds the set weakly and ends once the
//! registry that owns it is dropped.

use std::sync::Weak;
use std::time::Duration;

use super::{first_text, text, Position, Replica, ReplicaHealth, ReplicaSet};
use crate::sql::pool::SqlPool;
use crate::sql::DialectKind;
use crate::{Result, Value};

/// Starts the checks of `set` (the first one at once).
pub(super) fn spawn(set: Weak<ReplicaSet>, primary: SqlPool) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no Tokio runtime: replicas are never checked, so never used");
        return;
    };
    runtime.spawn(async move {
        loop {
            let Some(set) = set.upgrade().filter(|s| !s.is_closed()) else {
                return;
            };
            let interval = set.options.check_interval;
            check_all(&set, &primary).await;
            drop(set);
            tokio::time::sleep(interval).await;
        }
    });
}

/// Checks every replica once.
pub(crate) async fn check_all(set: &ReplicaSet, primary: &SqlPool) {
    let bound = set.options.check_interval.max(Duration::from_millis(500));
    // Where the primary stands, to tell "caught up" from "behind" (a replica of an
    // idle primary reports an old last-replayed time without being behind).
    let head = tokio::time::timeout(bound, set.primary_position(primary))
        .await
        .ok()
        .and_then(Result::ok);
    let checks = set.replicas.iter().map(|r| async {
        let found = match tokio::time::timeout(bound, probe(set.kind, r)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => Probe::unreachable(e.to_string()),
            Err(_) => Probe::unreachable(format!("no answer within {bound:?}")),
        };
        apply(set, r, found, head.as_ref());
    });
    futures_util::future::join_all(checks).await;
}

/// What one check found.
struct Probe {
    health: ReplicaHealth,
    applied: Option<Position>,
    /// The lag the server reports (MariaDB `Seconds_Behind_Master`; PostgreSQL the
    /// age of the last replayed transaction).
    lag: Option<Duration>,
    detail: Option<String>,
}

impl Probe {
    fn unreachable(detail: String) -> Self {
        Probe {
            health: ReplicaHealth::Unreachable,
            applied: None,
            lag: None,
            detail: Some(detail),
        }
    }

    fn stopped(applied: Option<Position>, detail: String) -> Self {
        Probe {
            health: ReplicaHealth::Stopped,
            applied,
            lag: None,
            detail: Some(detail),
        }
    }
}

/// Records a check's result on the replica.
fn apply(set: &ReplicaSet, r: &Replica, found: Probe, head: Option<&Position>) {
    if let Some(at) = &found.applied {
        r.applied(at);
    }
    if found.health != ReplicaHealth::Healthy {
        r.set_health(found.health, found.lag, found.detail);
        return;
    }
    // Caught up with where the primary stood before the check: no lag, whatever the
    // server's clock-based figure says.
    let lag = match (head, &found.applied) {
        (Some(head), Some(at)) if at.covers(head) => Some(Duration::ZERO),
        _ => found.lag,
    };
    match lag {
        Some(lag) if lag <= set.options.max_lag => {
            r.set_health(ReplicaHealth::Healthy, Some(lag), None)
        }
        Some(lag) => r.set_health(
            ReplicaHealth::Lagging,
            Some(lag),
            Some(format!(
                "{:.1} s behind the primary (at most {:?})",
                lag.as_secs_f64(),
                set.options.max_lag
            )),
        ),
        None => r.set_health(
            ReplicaHealth::Lagging,
            None,
            Some("behind the primary by an unknown time".into()),
        ),
    }
}

/// Asks a replica how it is.
async fn probe(kind: DialectKind, r: &Replica) -> Result<Probe> {
    match kind {
        DialectKind::Postgres => probe_postgres(&r.pool).await,
        _ => probe_mariadb(&r.pool).await,
    }
}

async fn probe_mariadb(pool: &SqlPool) -> Result<Probe> {
    let applied = first_text(&pool.query("SELECT @@gtid_slave_pos", vec![]).await?)
        .as_deref()
        .and_then(Position::parse_gtid);
    let (columns, rows) = pool.query_with_columns("SHOW SLAVE STATUS", vec![]).await?;
    let Some(row) = rows.first() else {
        return Ok(Probe::stopped(
            applied,
            "not a replica (SHOW SLAVE STATUS is empty)".into(),
        ));
    };
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .and_then(|i| text(row.get(i)))
    };
    let io = column("Slave_IO_Running").unwrap_or_default();
    let sql = column("Slave_SQL_Running").unwrap_or_default();
    if !io.eq_ignore_ascii_case("yes") || !sql.eq_ignore_ascii_case("yes") {
        let error = [column("Last_IO_Error"), column("Last_SQL_Error")]
            .into_iter()
            .flatten()
            .find(|e| !e.is_empty());
        return Ok(Probe::stopped(
            applied,
            format!(
                "replication not running (IO thread: {io}, SQL thread: {sql}){}",
                error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ));
    }
    let lag = column("Seconds_Behind_Master")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok(Probe {
        health: ReplicaHealth::Healthy,
        applied,
        lag,
        detail: None,
    })
}

async fn probe_postgres(pool: &SqlPool) -> Result<Probe> {
    let rows = pool
        .query(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, \
             CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END, \
             (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')::int8, \
             EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp()))::float8",
            vec![],
        )
        .await?;
    let row = rows.first().cloned().unwrap_or_default();
    let recovering = matches!(row.first(), Some(Value::Bool(true)));
    let applied = text(row.get(1)).as_deref().and_then(Position::parse_lsn);
    if !recovering {
        return Ok(Probe::stopped(
            applied,
            "not a standby (not in recovery: promoted?)".into(),
        ));
    }
    if matches!(row.get(2), Some(Value::Bool(true))) {
        return Ok(Probe::stopped(applied, "WAL replay is paused".into()));
    }
    if matches!(row.get(3), Some(Value::I64(0))) {
        return Ok(Probe::stopped(
            applied,
            "no WAL receiver is streaming from the primary".into(),
        ));
    }
    let lag = match row.get(4) {
        Some(Value::F64(s)) if s.is_finite() => Some(Duration::from_secs_f64(s.max(0.0))),
        _ => None,
    };
    Ok(Probe {
        health: ReplicaHealth::Healthy,
        applied,
        lag,
        detail: None,
    })
}
