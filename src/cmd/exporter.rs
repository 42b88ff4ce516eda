//! `xdpctl exporter`: Prometheus metrics of the interfaces' XDP programs,
//! served on GET /metrics or written once for node_exporter's textfile
//! collector. Every scrape reads the pinned maps and the kernel afresh: the
//! exporter keeps nothing between scrapes, so it can restart any time and
//! its counters are the maps' own (kept across `load --reuse-maps`,
//! restarting from zero when a load replaces the maps).

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::stat::{fchmod, Mode};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::escape;
use crate::io::httpd::{self, Request, Response};
use crate::io::outfile::NewFile;
use crate::net::netns::{self, Names};
use crate::obj::proginfo;
use crate::obj::skel::DataRec;
use crate::obj::statsmap::{action_name, StatsMap, MAP_NAME};
use crate::output::Output;
use crate::stop::Stop;
use crate::xdp::bpffs;
use crate::xdp::ifstate::Namespace;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9431";
/// The file `--textfile DIR` writes; node_exporter reads `*.prom`.
pub const TEXTFILE: &str = "xdpctl.prom";
/// How often the server looks up from waiting to see whether to stop.
const STOP_CHECK: Duration = Duration::from_millis(200);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Serve GET /metrics here; an address other than loopback exposes the
    /// counters to the network
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Write the metrics once to DIR/xdpctl.prom, atomically, for
    /// node_exporter's textfile collector, and exit (DIR must be root's)
    #[arg(long, value_name = "DIR", conflicts_with = "listen")]
    pub textfile: Option<PathBuf>,
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "not an address and port; give one such as 127.0.0.1:9431 or [::1]:9431".to_string()
    })
}

pub fn run(args: &Args, out: Output) -> Result<()> {
    bpffs::ensure_mounted()?;
    match &args.textfile {
        Some(dir) => write_textfile(dir, &netns_label()?),
        None => serve(args.listen, &netns_label()?, out),
    }
}

/// Label sets: (name, value) pairs in the order they print.
type Labels = Vec<(&'static str, String)>;

/// One scrape: everything read now, encoded in Prometheus' text format;
/// `netns` labels every series (see `netns_label`).
pub fn scrape(netns: &Option<String>) -> Result<String> {
    let ns = Namespace::read(true)?;
    let stats_on = proginfo::stats_sysctl_on()?;
    let metrics = Metrics::new();
    for state in &ns.ifaces {
        let dev = escape::text(&state.dev.name).into_owned();
        let base = |more: &[(&'static str, String)]| -> Labels {
            let mut labels = vec![("dev", dev.clone())];
            labels.extend(netns.iter().map(|n| ("netns", n.clone())));
            labels.extend_from_slice(more);
            labels
        };
        for att in &state.attached {
            // Unloaded since the dump: nothing to say of it.
            let Some(prog) = proginfo::facts(att.prog_id)? else { continue };
            let program = escape::text(&state.full_name(att.prog_id, prog.name)).into_owned();
            let owner = if state.is_ours(*att)? { "xdpctl" } else { "other" };
            let id = att.prog_id.to_string();
            let info = base(&[
                ("program", program.clone()),
                ("id", id.clone()),
                ("tag", prog.tag),
                ("mode", att.mode.to_string()),
                ("owner", owner.to_string()),
            ]);
            metrics.program_info.get_or_create(&info).set(1);
            // Counts exist only while stats are (or were) on.
            if stats_on || prog.run_cnt > 0 {
                let labels = base(&[("program", program), ("id", id)]);
                metrics.runs.get_or_create(&labels).inc_by(prog.run_cnt);
                metrics.run_seconds.get_or_create(&labels).inc_by(prog.run_time_ns as f64 / 1e9);
            }
        }
        let Some(rec) =
            state.rec.as_ref().filter(|_| state.attached.iter().any(|a| state.recorded(*a)))
        else {
            continue;
        };
        let path = rec.pin_dir.join(MAP_NAME);
        let recs = match StatsMap::open_fitting(&path) {
            Ok(Ok(mut map)) => map.read()?,
            // Another object's map of that name: no action counts to give;
            // the interface's other series stand.
            Ok(Err(_)) => continue,
            // A program that keeps no stats, or unloaded meanwhile.
            Err(_) if !path.exists() => continue,
            Err(e) => return Err(e),
        };
        metrics.add_counts(&recs, |action| base(&[("action", action)]));
    }
    metrics.encode()
}

/// The metric families of one scrape, filled then encoded.
struct Metrics {
    packets: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    program_info: Family<Labels, Gauge>,
    runs: Family<Labels, Counter>,
    run_seconds: Family<Labels, Counter<f64, AtomicU64>>,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            packets: Family::default(),
            bytes: Family::default(),
            program_info: Family::default(),
            runs: Family::default(),
            run_seconds: Family::default(),
        }
    }

    /// An interface's per-action counters; `labels` makes an action's labels.
    fn add_counts(&self, recs: &[DataRec], labels: impl Fn(String) -> Labels) {
        for (key, rec) in recs.iter().enumerate() {
            let labels = labels(action_name(key as u32));
            self.packets.get_or_create(&labels).inc_by(rec.rx_packets);
            self.bytes.get_or_create(&labels).inc_by(rec.rx_bytes);
        }
    }

    fn encode(self) -> Result<String> {
        let mut registry = Registry::with_prefix("xdpctl");
        registry.register(
            "xdp_packets",
            "Frames the XDP program of an interface xdpctl manages returned each action for",
            self.packets,
        );
        registry.register(
            "xdp_bytes",
            "Bytes of the frames the XDP program of an interface xdpctl manages returned each \
             action for",
            self.bytes,
        );
        registry.register(
            "xdp_program_info",
            "The XDP program attached to an interface (owner: xdpctl or another tool)",
            self.program_info,
        );
        registry.register(
            "xdp_program_runs",
            "Runs of an attached XDP program while the kernel's BPF stats were on",
            self.runs,
        );
        registry.register(
            "xdp_program_run_seconds",
            "Time an attached XDP program ran while the kernel's BPF stats were on",
            self.run_seconds,
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry)
            .map_err(|_| anyhow!("encoding the metrics in Prometheus' text format"))?;
        Ok(text)
    }
}

/// The `netns` label: None in the initial namespace, else the namespace's
/// `ip netns` name or its cookie.
pub fn netns_label() -> Result<Option<String>> {
    let own = netns::cookie()?;
    if !netns::is_initial()? {
        let mut names = Names::new()?;
        names.learn([own], crate::output::say);
        return Ok(Some(names.name(own).map_or_else(|| own.to_string(), escape::bytes)));
    }
    Ok(None)
}

/// Serve GET /metrics on `addr` until Ctrl-C or SIGTERM.
fn serve(addr: SocketAddr, netns: &Option<String>, out: Output) -> Result<()> {
    let listener = TcpListener::bind(addr).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "something else listens there (`ss -ltnp 'sport = :{}'` names it); give \
                 another port with --listen",
                addr.port()
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                "no interface here has that address; give one of this machine's with --listen \
                 (`ip address` lists them)"
                    .to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need CAP_NET_BIND_SERVICE; pick a higher one".to_string()
            }
            _ => "give another address with --listen".to_string(),
        };
        anyhow!("cannot listen on {addr}: {e}; {hint}")
    })?;
    if !addr.ip().is_loopback() {
        out.warn(&format!(
            "warning: listening on {addr}, not loopback: anyone who reaches this port reads \
             the interfaces' counters and programs"
        ));
    }
    let stop = Stop::install()?;
    out.info(format!("Serving metrics on http://{addr}/metrics; Ctrl-C stops"));
    while !stop.requested() {
        httpd::serve_one(&listener, STOP_CHECK, |request| answer(request, netns, out))?;
    }
    Ok(())
}

/// One request: the metrics at GET /metrics, 404 elsewhere.
fn answer(request: &Request, netns: &Option<String>, out: Output) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/metrics") => match scrape(netns) {
            Ok(body) => Response { status: 200, content_type: prometheus_text::CONTENT_TYPE, body },
            Err(e) => {
                out.warn(&format!("error: scrape failed: {e:#}"));
                Response::text(500, &format!("scrape failed: {e:#}\n"))
            }
        },
        ("GET", _) => Response::text(404, "not found; metrics are at /metrics\n"),
        _ => Response::text(405, "only GET /metrics is served\n"),
    }
}

/// The metrics once, at DIR/xdpctl.prom: written aside, made readable by
/// node_exporter (0644), then renamed into place.
fn write_textfile(dir: &Path, netns: &Option<String>) -> Result<()> {
    check_textfile_dir(dir)?;
    let text = scrape(netns)?;
    let mut file = NewFile::create_for(&dir.join(TEXTFILE), "--textfile")?;
    let shown = file.shown().to_string();
    file.file().write_all(text.as_bytes()).with_context(|| format!("writing {shown}"))?;
    let readable = Mode::from_bits_truncate(0o644);
    fchmod(file.file(), readable).with_context(|| format!("making {shown} readable"))?;
    file.put_in_place()
}

/// DIR must be root's and writable by no one else, unless sticky: anyone
/// who can write there could swap files node_exporter reports.
fn check_textfile_dir(dir: &Path) -> Result<()> {
    let shown = escape::path(dir);
    let meta = fs::metadata(dir).with_context(|| {
        format!("--textfile {shown}: cannot look at it; give an existing directory")
    })?;
    if !meta.is_dir() {
        bail!("--textfile {shown}: not a directory; give the directory node_exporter reads");
    }
    if meta.uid() != 0 {
        bail!(
            "--textfile {shown}: owned by uid {}, not root; xdpctl writes only into root's \
             directories (chown root {shown})",
            meta.uid()
        );
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        bail!(
            "--textfile {shown}: others may write there (mode {:o}); give a directory only \
             root can write to (chmod go-w {shown})",
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_prometheus_names_and_labels() {
        let m = Metrics::new();
        let recs =
            [DataRec { rx_packets: 3, rx_bytes: 180 }, DataRec { rx_packets: 0, rx_bytes: 0 }];
        m.add_counts(&recs, |action| vec![("dev", "eth0".into()), ("action", action)]);
        let info: Labels = vec![("dev", "eth0".into()), ("program", "x\"y".into())];
        m.program_info.get_or_create(&info).set(1);
        m.run_seconds.get_or_create(&vec![("dev", "eth0".into())]).inc_by(0.5);
        let text = m.encode().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# TYPE xdpctl_xdp_packets_total counter",
            "xdpctl_xdp_packets_total{dev=\"eth0\",action=\"XDP_ABORTED\"} 3",
            "xdpctl_xdp_bytes_total{dev=\"eth0\",action=\"XDP_ABORTED\"} 180",
            "xdpctl_xdp_packets_total{dev=\"eth0\",action=\"XDP_DROP\"} 0",
            "# TYPE xdpctl_xdp_program_info gauge",
            "xdpctl_xdp_program_info{dev=\"eth0\",program=\"x\\\"y\"} 1",
            "xdpctl_xdp_program_run_seconds_total{dev=\"eth0\"} 0.5",
        ] {
            assert!(lines.contains(&want), "{want} in:\n{text}");
        }
        assert!(!text.contains("# EOF"), "the classic text format, which node_exporter reads");
    }
}
