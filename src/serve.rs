//! `spgate serve` and `spgate demo`: bind the listeners, run the front-ends over one gateway,
//! and shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::gateway::Gateway;

/// Runs the gateway until `shutdown` is cancelled. Prints `sftp listening on ADDR` on stdout
/// for each listener once bound (tests start it on port 0 and read the line).
pub async fn run(config: Config, shutdown: CancellationToken) -> std::io::Result<()> {
    run_reporting(config, shutdown, |_, _| {}).await
}

/// [`run`], calling `bound(protocol, address)` after each listener is bound and announced.
pub async fn run_reporting(
    config: Config,
    shutdown: CancellationToken,
    bound: impl Fn(&str, SocketAddr),
) -> std::io::Result<()> {
    let gateway = Arc::new(Gateway::new(config)?);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(sftp) = &gateway.config.sftp {
        let listener = bind(sftp.listen, "sftp").await?;
        bound("sftp", listener.local_addr()?);
        tasks.spawn(crate::sftp::serve(
            listener,
            gateway.clone(),
            shutdown.clone(),
        ));
    }
    if tasks.is_empty() {
        tracing::warn!("no listener is configured ([sftp] is absent); nothing to serve");
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shutdown.cancel();
                return Err(e);
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
    Ok(())
}

async fn bind(address: SocketAddr, protocol: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(address).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("binding {protocol} on {address}: {e}"))
    })?;
    println!("{protocol} listening on {}", listener.local_addr()?);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(listener)
}
