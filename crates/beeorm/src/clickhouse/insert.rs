//! Batch inserts: one `INSERT INTO t(fields) FORMAT RowBinary` request per batch,
//! its body streamed in chunks by the `clickhouse` crate, after the row type was
//! checked against `DESCRIBE TABLE`.

use tracing::Instrument;

use super::ClickHouse;
use crate::Result;

impl ClickHouse {
    /// Inserts `rows` into `table` (a table of the pool's database) in one request
    /// and returns how many rows were sent. `R` is a
    /// `#[derive(clickhouse::Row, Serialize)]` struct; its fields name the columns
    /// (columns it leaves out get their defaults).
    ///
    /// Before anything is sent, every field is checked against the table's columns
    /// (`DESCRIBE TABLE`, cached per table): a missing column or a type that does not
    /// fit is an [`Error::ClickHouseType`](crate::Error::ClickHouseType) and nothing
    /// is written. Sending each chunk and waiting for the server's answer are each
    /// bounded by the pool's query timeout.
    ///
    /// An insert is not a transaction: ClickHouse writes a batch in blocks of up to
    /// `max_insert_block_size` rows (1,048,576 by default) as it parses them, so a
    /// failure or a cancelled future in a bigger batch may leave its first blocks
    /// written. An empty `rows` sends nothing.
    pub async fn insert<R>(&self, table: &str, rows: &[R]) -> Result<u64>
    where
        R: ::clickhouse::RowOwned + ::clickhouse::RowWrite + serde::Serialize,
    {
        if rows.is_empty() {
            return Ok(0);
        }
        let shape = self.write_shape(table, rows)?;
        self.check_insert(table, &shape).await?;
        let limit = self.inner.timeouts.query;
        // No overall limit (a big batch may rightly take long): the crate bounds
        // each chunk's send and the wait for the server's answer.
        let result = async {
            let mut insert = self
                .inner
                .client
                .insert::<R>(table)
                .await?
                .with_timeouts(Some(limit), Some(limit));
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await
        }
        .instrument(tracing::debug_span!("clickhouse", pool = %self.inner.name, insert = %table, rows = rows.len()))
        .await
        .map_err(|e| self.error(format!("insert into `{table}`"), e));
        if result.is_err() {
            // The table may have changed under the cached description.
            self.inner.schemas.forget_table(table);
        }
        result.map(|()| rows.len() as u64)
    }
}
