//! E1: every Redis command is traced — a span with pool and command name, an event
//! with its duration — and keys and values never reach the log.
#![allow(clippy::unwrap_used)]

mod common_redis;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common_redis::{cleanup, engine, prefix, registry};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One test per binary: tracing caches per-callsite interest globally.
#[tokio::test(flavor = "current_thread")]
async fn every_command_is_traced_with_pool_name_and_duration_but_no_values() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("tracing");
    redis
        .set(format!("{p}secret-key"), "secret-value")
        .await
        .unwrap();
    let _: Option<String> = redis
        .hget(format!("{p}secret-key"), "f")
        .await
        .unwrap_or(None);
    let _: () = redis
        .pipeline()
        .get(format!("{p}secret-key"))
        .ignore()
        .query()
        .await
        .unwrap();
    cleanup(&redis, &p).await;
    drop(guard);
    let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        out.lines()
            .any(|l| l.contains("redis{pool=default command=SET}")
                && l.contains("command done")
                && l.contains("duration_us=")),
        "no duration event for SET in:\n{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("command=HGET")
            && l.contains("WARN")
            && l.contains("command failed")),
        "failed command (HGET on a string) not reported:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("command=\"PIPELINE\"") || l.contains("command=PIPELINE")),
        "pipeline not traced:\n{out}"
    );
    assert!(!out.contains("secret"), "keys or values logged:\n{out}");
}
