//! `cargo run -p beeorm-example-service`: the example service on 127.0.0.1:8080
//! (`BEEORM_SERVICE_ADDR`), against the local MariaDB and Redis (see the crate docs
//! for the variables). `--seed N` fills an empty catalogue with N products (default
//! 10,000). Ctrl-C or SIGTERM stops it gracefully: requests in flight finish, the
//! audit consumer finishes its batch, the last cache counters are published.

use beeorm_example_service::{router, run_audit_consumer, start, Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut seed = 10_000;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--seed", Some(n)) => {
                seed = n.parse().map_err(|_| format!("--seed {n}: not a number"))?
            }
            _ => {
                return Err(
                    format!("unknown argument `{a}` (usage: beeorm-service [--seed N])").into(),
                )
            }
        }
    }
    let config = Config::from_env();
    let addr = std::env::var("BEEORM_SERVICE_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let registry = start(&config, seed).await?;
    let (stop_consumer, stopped) = tokio::sync::oneshot::channel();
    let consumer = tokio::spawn(run_audit_consumer(registry.clone(), stopped));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, caches = config.caches, "serving");
    axum::serve(listener, router(registry.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = stop_consumer.send(());
    match consumer.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "the audit consumer stopped with an error"),
        Err(e) => tracing::warn!(error = %e, "the audit consumer panicked"),
        Ok(Ok(())) => {}
    }
    let engine = registry.create_engine();
    if let Err(e) = engine.publish_cache_stats().await {
        tracing::warn!(error = %e, "last cache counters not published");
    }
    registry.close().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
