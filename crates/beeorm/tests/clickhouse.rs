//! ClickHouse tests.
