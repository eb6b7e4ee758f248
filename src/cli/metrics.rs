//! The command line's side of the metrics (src/metrics/): `opsconsole exporter`, `status --openmetrics/--textfile`, and the
//! exporter beside `sync --daemon` and the console.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::workspace::Workspace;

/// Parses and binds a listen address, printing the exposure warning; the error is in words.
pub fn listen(addr: &str) -> Result<std::net::TcpListener, String> {
    let addr = crate::metrics::parse_listen(addr)?;
    if let Some(w) = crate::metrics::exposure_warning(&addr) {
        say!("{w}");
        tracing::warn!("{w}");
    }
    crate::metrics::server::bind(addr)
}

/// `opsconsole exporter`: serve `/metrics` until SIGINT/SIGTERM. Exit 0 stopped, 2 a bad
/// `--listen` or a port that cannot be bound.
pub fn run_exporter(ws: Workspace, cfg: Config, addr: Option<&str>) -> std::io::Result<ExitCode> {
    let listener = match listen(addr.unwrap_or(crate::metrics::DEFAULT_LISTEN)) {
        Ok(l) => l,
        Err(e) => {
            say!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let bound = listener.local_addr()?;
    // Scripts and tests read the address (with --listen 127.0.0.1:0, the port chosen).
    println!("opsconsole exporter: serving http://{bound}/metrics for {}", ws.root.display());
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(%bound, "exporter serving");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            r = crate::metrics::server::run(ws, cfg, listener) => r,
            _ = term.recv() => Ok(()),
            _ = int.recv() => Ok(()),
        }
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

/// `status --openmetrics` (print OpenMetrics text) and `--textfile PATH` (write the 0.0.4
/// text for node_exporter's textfile collector, atomically), from the report `status`
/// took (in `took`).
pub fn status(
    ws: &Workspace,
    cfg: &Config,
    report: &crate::status::StatusReport,
    took: std::time::Duration,
    print: bool,
    textfile: Option<&Path>,
) -> std::io::Result<()> {
    let mut opts = crate::metrics::sampler::options(ws, cfg);
    opts.sample_duration_seconds = Some(took.as_secs_f64());
    let e = crate::metrics::render(report, &opts);
    if print {
        use std::io::Write;
        std::io::stdout().write_all(&e.openmetrics)?;
    }
    if let Some(p) = textfile {
        crate::metrics::write_textfile(p, &String::from_utf8_lossy(&e.text))
            .map_err(|err| std::io::Error::new(err.kind(), format!("writing {}: {err}", p.display())))?;
    }
    Ok(())
}

/// Binds `addr` and serves the exporter on its own thread beside a daemon or the console.
pub fn serve_beside(ws: &Workspace, cfg: &Config, addr: &str) -> Result<std::net::SocketAddr, String> {
    let listener = listen(addr)?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    crate::metrics::server::spawn_thread(ws.clone(), cfg.clone(), listener).map_err(|e| e.to_string())?;
    tracing::info!(%bound, "metrics serving");
    Ok(bound)
}
