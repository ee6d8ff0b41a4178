//! MySQL sessions are strict even when the DSN's own init commands turn strict mode
//! off (needs the MySQL server of the test suite, `BEEORM_MYSQL_URL`).

use std::sync::Arc;

use super::mysql::MySqlPool;
use super::pool::SqlPool;
use crate::Value;

#[tokio::test]
async fn a_session_made_lax_by_its_init_commands_is_still_strict() {
    let url = std::env::var("BEEORM_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url).unwrap())
        .init(vec!["SET SESSION sql_mode = ''"]);
    let pool = SqlPool::MySql(Arc::new(MySqlPool::new(
        "lax",
        opts.into(),
        "utf8mb4",
        Default::default(),
        None,
    )));
    let mut conn = pool.conn().await.unwrap();
    let mode = conn
        .query("SELECT @@SESSION.sql_mode", vec![])
        .await
        .unwrap();
    let mode = mode[0][0].as_str().unwrap().to_string();
    assert!(mode.contains("STRICT_ALL_TABLES"), "{mode}");
    conn.execute(
        "CREATE TEMPORARY TABLE lax (note varchar(5) NOT NULL)",
        vec![],
    )
    .await
    .unwrap();
    for long in ["abcdef", "ﷺﷺﷺﷺﷺﷺ"] {
        let result = conn
            .execute("INSERT INTO lax (note) VALUES (?)", vec![Value::from(long)])
            .await;
        assert!(result.is_err(), "{long} was truncated: {result:?}");
    }
    let rows = conn.query("SELECT note FROM lax", vec![]).await.unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}
