//! Schema sync (B5, B6): compares each [`TableSchema`] with what the server holds
//! (the drivers' introspection, `SqlPool::snapshot`) and produces [`Alter`]s, each
//! marked safe or unsafe.
//!
//! It sits above both the schema model and the drivers: the model (`crate::schema`)
//! says what a table should be, the drivers (`crate::sql`) say what it is and how
//! each server spells DDL; this module only compares and plans.

mod alter;

pub use alter::Alter;

use crate::schema::TableSchema;
use crate::{Engine, Result};

impl TableSchema {
    /// The alters that bring this table (and its change-log table, for an
    /// `#[orm(log)]` entity) in line with its entity: `(false, [])` when it already
    /// matches. Other tables of the pool are left alone.
    pub async fn schema_changes(&self, engine: &Engine) -> Result<(bool, Vec<Alter>)> {
        let pool = engine.sql_pool(self.pool_name())?;
        let mut tables = vec![self];
        if let Some(log) = self.log_schema() {
            tables.push(log);
        }
        let alters = alter::plan(&pool, &tables, false).await?;
        Ok((!alters.is_empty(), alters))
    }

    /// Creates or alters the table to match its entity, unsafe changes included.
    pub async fn update_schema(&self, engine: &Engine) -> Result<()> {
        for alter in self.schema_changes(engine).await?.1 {
            alter.exec(engine).await?;
        }
        Ok(())
    }

    /// Drops the table if it exists.
    pub async fn drop_table(&self, engine: &Engine) -> Result<()> {
        let pool = engine.sql_pool(self.pool_name())?;
        let dialect = pool.dialect().await?;
        let sql = format!(
            "DROP TABLE IF EXISTS {}",
            dialect.as_dialect().quote(self.table_name())
        );
        pool.execute_script(&sql).await
    }

    /// Deletes every row and restarts the ID sequence at 1.
    pub async fn truncate_table(&self, engine: &Engine) -> Result<()> {
        let pool = engine.sql_pool(self.pool_name())?;
        let dialect = pool.dialect().await?;
        let table = dialect.as_dialect().quote(self.table_name());
        let sql = match pool.kind() {
            crate::DialectKind::MySql => format!("TRUNCATE TABLE {table}"),
            crate::DialectKind::Postgres => format!("TRUNCATE TABLE {table} RESTART IDENTITY"),
            crate::DialectKind::Sqlite => format!(
                "DELETE FROM {table};\nDELETE FROM sqlite_sequence WHERE name = {}",
                crate::sql::quote_literal(self.table_name())
            ),
        };
        pool.execute_script(&sql).await
    }

    /// Every alter of the registered tables of `pool`, and drops of unknown tables.
    pub(crate) async fn pool_alters(
        engine: &Engine,
        pool: &str,
        tables: &[&TableSchema],
    ) -> Result<Vec<Alter>> {
        alter::plan(&engine.sql_pool(pool)?, tables, true).await
    }
}
