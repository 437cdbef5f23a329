//! `boxoffice-load`: the load generator.
//!
//! It drives the HTTP API like a crowd at a sale opening and checks what it was sold. A run
//! creates its own event, sends a seeded [`workload`] over many keep-alive connections
//! ([`runner`], [`client`]), then reads every section and seat map back and [`verify`]s
//! them against the answers it got: sold + held + available == capacity, no seat sold twice,
//! sold and held equal to what the run was told. With `--ceiling` it first runs the
//! identical workload against a no-op axum server in this process ([`ceiling`]), so
//! boxoffice's figures read as a fraction of what this machine's HTTP stack can do.
//! [`report`] keeps HDR histograms per request kind; [`plot`] draws them as SVG.
//!
//! It sends only to loopback addresses, and every run is bounded in time.

pub mod ceiling;
pub mod cli;
pub mod client;
pub mod plot;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod spawn;
pub mod usage;
pub mod verify;
pub mod watch;
pub mod workload;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use serde_json::Value;

pub use cli::Args;
use client::Method;
use client::{once, Target};
use report::{Comparison, Report, RunReport};
use runner::RunConfig;
use verify::{Observed, ObservedSection, SeatStatus, Verdict};
use workload::{Action, EventPlan, Spec, WorkloadKind};

/// Exit status when verification failed.
pub const EXIT_VERIFY_FAILED: u8 = 1;
/// Exit status when the run could not be made (bad flags, no server...).
pub const EXIT_ERROR: u8 = 2;

/// Parses the command line, runs, prints; the whole of `main`.
pub fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("boxoffice-load: cannot start tokio: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_VERIFY_FAILED),
        Err(e) => {
            eprintln!("boxoffice-load: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The workload of these arguments.
pub fn spec(args: &Args) -> anyhow::Result<Spec> {
    let event_prefix = match &args.event_prefix {
        Some(p) => p.clone(),
        None => format!(
            "load{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
        ),
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !event_prefix.chars().all(ok) || event_prefix.len() > 48 {
        bail!("--event-prefix must match [A-Za-z0-9_-]{{1,48}}");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be positive");
    }
    if !(1..=1000).contains(&args.qty) {
        bail!("--qty must be 1 to 1000");
    }
    let action = args.action.unwrap_or(match args.workload {
        WorkloadKind::Sellout | WorkloadKind::Waitlist => Action::Purchase,
        _ => Action::Hold,
    });
    Ok(Spec {
        kind: args.workload,
        action,
        event_prefix,
        qty: args.qty,
        users: args.users.max(1),
        capacity: args.capacity,
        seats: args.seats.max(1),
        buyers: args.buyers,
        tickets: args.tickets.max(1),
        seed: args.seed,
    })
}

fn run_config(args: &Args, label: &str) -> RunConfig {
    RunConfig {
        connections: args.connections,
        rate: args.rate,
        duration: args.duration,
        requests: args.requests,
        warmup: args.warmup,
        timeout: args.timeout,
        progress: !args.quiet,
        label: label.to_string(),
    }
}

/// Runs as the arguments say; `Ok(false)` when verification failed.
pub async fn run(args: Args) -> anyhow::Result<bool> {
    let spec = spec(&args)?;
    let plan = spec.event();
    let ceiling = if args.ceiling || args.ceiling_only {
        Some(run_ceiling(&args, &spec, &plan).await?)
    } else {
        None
    };
    let (boxoffice, server) = if args.ceiling_only {
        (None, None)
    } else {
        let (run, server) = run_boxoffice(&args, &spec, &plan).await?;
        (Some(run), Some(server))
    };
    let passed = boxoffice
        .as_ref()
        .and_then(|r| r.verification.as_ref())
        .is_none_or(|v| v.passed);
    let kind = spec.primary_kind();
    let comparison = match (&boxoffice, &ceiling) {
        (Some(b), Some(c)) => Comparison::new(kind, b, c),
        _ => None,
    };
    let report = Report {
        workload: spec,
        mode: if args.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .to_string(),
        connections: args.connections,
        rate: args.rate,
        warmup_s: args.warmup.as_secs_f64(),
        ceiling,
        boxoffice,
        comparison,
        live_holds: args.live_holds,
        server,
    };
    print_report(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &args.plots {
        for path in plot::write(&report, kind, dir)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(passed)
}

fn print_report(report: &Report) {
    let w = &report.workload;
    let mode = match report.rate {
        Some(rate) => format!(
            "open loop at {rate:.0} req/s over {} connections",
            report.connections
        ),
        None => format!("closed loop, {} connections", report.connections),
    };
    println!(
        "workload {} ({:?}), {mode}, seed {}",
        w.kind.name(),
        w.action,
        w.seed
    );
    if let Some(c) = &report.ceiling {
        print!("{}", c.text());
    }
    if let Some(b) = &report.boxoffice {
        print!("{}", b.text());
    }
    if let (Some(cmp), Some(b), Some(c)) = (&report.comparison, &report.boxoffice, &report.ceiling)
    {
        println!("{}", cmp.text(b, c));
    }
    if let Some(server) = &report.server {
        if report.live_holds > 0 {
            println!("live holds placed before the run: {}", report.live_holds);
        }
        print!("{}", server.text());
        if let Some(b) = &report.boxoffice {
            print!("{}", snapshot_attribution(b, &server.snapshot_phases));
        }
    }
}

/// After a snapshot, how long its effects are looked for (the queue it left draining).
const AFTER_SNAPSHOT_MS: u64 = 1000;

/// Where the slowest answers of run `b` fell against the snapshots' phases: each snapshot's
/// phases in seconds from the end of the warm-up, then the answers at or over the run's p99
/// per phase.
fn snapshot_attribution(b: &RunReport, phases: &[watch::SnapshotPhases]) -> String {
    let Some(kind) = b.kinds.first() else {
        return String::new();
    };
    if phases.is_empty() || b.timeline_latency.is_empty() {
        return String::new();
    }
    let rel = |t: u64| (t as f64 - b.measure_start_unix_ms as f64) / 1000.0;
    let mut out = String::from("  snapshots (s from the end of the warm-up):");
    for p in phases {
        out.push_str(&format!(
            " [started {:.2}, write {:.2}-{:.2}, encode {} ms]",
            rel(p.started_unix_ms),
            rel(p.write_from_unix_ms),
            rel(p.written_unix_ms),
            p.encode_ms
        ));
    }
    out.push('\n');
    let phase_of = |t: u64| {
        phases
            .iter()
            .find_map(|p| p.phase_at(t))
            .or_else(|| {
                phases
                    .iter()
                    .any(|p| t > p.written_unix_ms && t <= p.written_unix_ms + AFTER_SNAPSHOT_MS)
                    .then_some("the 1 s after a write")
            })
            .unwrap_or("no snapshot")
    };
    let by_phase = b.answers_by_phase(kind.p99_ms, phase_of);
    let list: Vec<String> = by_phase
        .iter()
        .map(|(label, buckets, answers, slow)| {
            format!(
                "{label}: {slow} of {answers} in {:.2} s",
                *buckets as f64 * b.bucket_s
            )
        })
        .collect();
    out.push_str(&format!(
        "  answers at or over the p99 ({:.1} ms), by what the snapshot was doing: {}\n",
        kind.p99_ms,
        list.join("; ")
    ));
    out
}

async fn run_ceiling(args: &Args, spec: &Spec, plan: &EventPlan) -> anyhow::Result<RunReport> {
    let ceiling = ceiling::Ceiling::start()?;
    let target = Arc::new(
        Target::new(ceiling.addr, "ceiling", Some("ceiling"), args.auth)?
            .with_keys(args.idempotency_keys),
    );
    create_event(&target, plan).await?;
    let load = usage::load_average();
    let before = usage::read_cpu(None);
    let out = runner::run(target, spec, &run_config(args, "ceiling")).await;
    let after = usage::read_cpu(None);
    drop(ceiling);
    let mut report = RunReport::new("ceiling", &out, None);
    report.load_average = load;
    if let (Some(before), Some(after)) = (before, after) {
        let answers = report.requests + report.warmup_requests;
        report.cpu = Some(usage::CpuUse::between(
            &before,
            &after,
            answers,
            Some(usage::CEILING_THREADS),
        ));
    }
    Ok(report)
}

async fn run_boxoffice(
    args: &Args,
    spec: &Spec,
    plan: &EventPlan,
) -> anyhow::Result<(RunReport, watch::ServerSide)> {
    let mut spawned = match &args.spawn {
        Some(path) => Some(spawn::Spawned::start(path, args.shards)?),
        None => None,
    };
    let result = async {
        let (addr, admin, jwt) = match &spawned {
            Some(s) => (s.addr, s.admin_token.clone(), Some(s.jwt_secret.clone())),
            None => {
                let url = args
                    .url
                    .as_deref()
                    .ok_or_else(|| anyhow!("give --url, --spawn, or --ceiling-only"))?;
                let admin = args
                    .admin_token
                    .clone()
                    .ok_or_else(|| anyhow!("give --admin-token (or BOXOFFICE_ADMIN_TOKEN)"))?;
                (parse_url(url)?, admin, args.jwt_secret.clone())
            }
        };
        let target = Arc::new(
            Target::new(addr, &admin, jwt.as_deref(), args.auth)?.with_keys(args.idempotency_keys),
        );
        if let Some(s) = spawned.as_mut() {
            s.wait_ready(&target).await?;
        }
        let pid = spawned
            .as_ref()
            .map(spawn::Spawned::pid)
            .or(args.server_pid);
        let rss_baseline = pid.and_then(watch::rss_kib);
        if args.live_holds > 0 {
            place_live_holds(args, spec, &target).await?;
        }
        create_event(&target, plan).await?;
        let watcher = watch::start(
            target.clone(),
            pid,
            rss_baseline,
            spawned.as_ref().map(spawn::Spawned::snapshot_lines),
        )
        .await;
        let load = usage::load_average();
        let before = pid.and_then(|pid| usage::read_cpu(Some(pid)));
        let out = runner::run(target.clone(), spec, &run_config(args, "boxoffice")).await;
        let after = pid.and_then(|pid| usage::read_cpu(Some(pid)));
        let server = watcher.finish().await;
        let verdict = verify_run(&target, plan, &out.ledger).await?;
        let mut report = RunReport::new("boxoffice", &out, Some(verdict));
        report.load_average = load;
        if let (Some(before), Some(after)) = (before, after) {
            let answers = report.requests + report.warmup_requests;
            report.cpu = Some(usage::CpuUse::between(&before, &after, answers, None));
        }
        Ok((report, server))
    }
    .await;
    if let Some(mut s) = spawned {
        if let Err(e) = s.stop() {
            eprintln!("boxoffice-load: {e}");
        }
    }
    result
}

/// Hold TTL of the `--live-holds` event: they outlive any run.
const LIVE_HOLD_TTL_SECONDS: u64 = 86_400;
/// The longest the `--live-holds` warm-up may take.
const LIVE_HOLDS_TIME_MAX: Duration = Duration::from_secs(600);
/// The largest GA section (the engine's capacity limit).
const LIVE_HOLDS_MAX: u64 = 10_000_000;

/// `--live-holds N`: N holds of one ticket in an event of their own (TTL 24 h), placed by
/// a closed loop over the run's connections; their answers are not reported.
async fn place_live_holds(args: &Args, spec: &Spec, target: &Arc<Target>) -> anyhow::Result<()> {
    if args.live_holds > LIVE_HOLDS_MAX {
        bail!("--live-holds must be at most {LIVE_HOLDS_MAX}");
    }
    let live = Spec {
        kind: WorkloadKind::HotSection,
        action: Action::Hold,
        event_prefix: format!("{}-live", spec.event_prefix),
        qty: 1,
        capacity: LIVE_HOLDS_MAX as u32,
        ..spec.clone()
    };
    let mut plan = live.event();
    plan.body["hold_ttl_seconds"] = serde_json::json!(LIVE_HOLD_TTL_SECONDS);
    create_event(target, &plan).await?;
    let config = RunConfig {
        connections: args.connections,
        rate: None,
        duration: LIVE_HOLDS_TIME_MAX,
        requests: Some(args.live_holds),
        warmup: Duration::ZERO,
        timeout: args.timeout,
        progress: !args.quiet,
        label: "live holds".to_string(),
    };
    let started = std::time::Instant::now();
    runner::run(target.clone(), &live, &config).await;
    eprintln!(
        "boxoffice-load: placed {} live holds in {:.1} s",
        args.live_holds,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `http://127.0.0.1:8080`, `127.0.0.1:8080` or `localhost:8080`, to a loopback address.
pub fn parse_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.starts_with("https://") || url.starts_with("https://") {
        bail!("https is not supported: boxoffice serves plain HTTP on loopback");
    }
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addrs: Vec<SocketAddr> = hostport
        .to_socket_addrs()
        .with_context(|| format!("`{url}` is not host:port"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.ip().is_loopback())
        .copied()
        .ok_or_else(|| {
            anyhow!("{url} is not a loopback address: boxoffice-load only sends to this machine")
        })
}

async fn create_event(target: &Arc<Target>, plan: &EventPlan) -> anyhow::Result<()> {
    let body = Bytes::from(serde_json::to_vec(&plan.body)?);
    let reply = once(target, Method::Post, "/v1/events", Some(body)).await?;
    if reply.status != 201 {
        bail!(
            "creating event {} answered {}: {}",
            plan.id,
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    Ok(())
}

/// Extra wait after the last expiring hold's TTL: the server returns expired inventory
/// to sale within 1 s (invariant 6 of docs/architecture.md).
const EXPIRY_SWEEP_SLACK: Duration = Duration::from_millis(1500);

async fn verify_run(
    target: &Arc<Target>,
    plan: &EventPlan,
    ledger: &verify::Ledger,
) -> anyhow::Result<Verdict> {
    if let Some(until) = ledger.expiring_until() {
        tokio::time::sleep_until((until + EXPIRY_SWEEP_SLACK).into()).await;
    }
    let mut observed = observe(target, plan).await?;
    for id in ledger.entry_ids() {
        let entry = get_json(target, &format!("/v1/waitlist/{id}")).await?;
        observed.entries.push(serde_json::from_value(entry)?);
    }
    Ok(verify::verify(plan, ledger, &observed))
}

async fn get_json(target: &Arc<Target>, path: &str) -> anyhow::Result<Value> {
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        once(target, Method::Get, path, None),
    )
    .await
    .map_err(|_| anyhow!("GET {path}: no answer in 60 s"))??;
    if reply.status != 200 {
        bail!("GET {path} answered {}", reply.status);
    }
    Ok(serde_json::from_slice(&reply.body)?)
}

/// Reads the event's sections and seat maps back.
pub async fn observe(target: &Arc<Target>, plan: &EventPlan) -> anyhow::Result<Observed> {
    let event = get_json(target, &format!("/v1/events/{}", plan.id)).await?;
    let seats = if plan.sections.iter().any(|s| s.seated) {
        Some(get_json(target, &format!("/v1/events/{}/seats", plan.id)).await?)
    } else {
        None
    };
    parse_observed(&event, seats.as_ref())
}

/// Turns the event and seat-map JSON into [`Observed`].
pub fn parse_observed(event: &Value, seats: Option<&Value>) -> anyhow::Result<Observed> {
    let bad = |what: &str| anyhow!("the event JSON has no {what}");
    let mut sections = Vec::new();
    for s in event["sections"]
        .as_array()
        .ok_or_else(|| bad("sections"))?
    {
        let n = |f: &str| s[f].as_u64().ok_or_else(|| bad(f));
        let id = s["id"]
            .as_str()
            .ok_or_else(|| bad("section id"))?
            .to_string();
        let map = seats.and_then(|m| {
            let section = m["sections"]
                .as_array()?
                .iter()
                .find(|x| x["section_id"].as_str() == Some(id.as_str()))?;
            let mut out = Vec::new();
            for row in section["rows"].as_array()? {
                for seat in row["seats"].as_array()? {
                    let status = match seat["status"].as_str()? {
                        "free" => SeatStatus::Free,
                        "held" => SeatStatus::Held,
                        "sold" => SeatStatus::Sold,
                        _ => return None,
                    };
                    out.push((seat["id"].as_str()?.to_string(), status));
                }
            }
            Some(out)
        });
        sections.push(ObservedSection {
            capacity: n("capacity")?,
            available: n("available")?,
            held: n("held")?,
            sold: n("sold")?,
            seats: map,
            waiting: s["waiting"].as_u64(),
            set_aside: s["set_aside"].as_u64(),
            id,
        });
    }
    Ok(Observed {
        sections,
        entries: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_resolve_to_loopback_only() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            parse_url("127.0.0.1:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(parse_url("localhost:8080").unwrap().ip().is_loopback());
        assert!(parse_url("http://192.168.1.10:8080").is_err());
        assert!(parse_url("https://127.0.0.1:8080").is_err());
    }

    #[test]
    fn observed_state_is_read_from_the_contract_json() {
        let event = json!({"id": "e", "sections": [
            {"id": "ga", "kind": "general", "capacity": 10, "available": 7, "held": 1, "sold": 2, "rows": []},
            {"id": "floor", "kind": "seated", "capacity": 2, "available": 1, "held": 0, "sold": 1,
             "rows": [{"label": "A", "count": 2}]}]});
        let seats = json!({"event_id": "e", "sections": [{"section_id": "floor", "name": "F",
            "rows": [{"label": "A", "seats": [{"id": "A-1", "status": "sold"}, {"id": "A-2", "status": "free"}]}]}]});
        let observed = parse_observed(&event, Some(&seats)).unwrap();
        assert_eq!(observed.sections[0].sold, 2);
        assert!(observed.sections[0].seats.is_none());
        let map = observed.sections[1].seats.as_ref().unwrap();
        assert_eq!(map[0], ("A-1".to_string(), SeatStatus::Sold));
        assert_eq!(map.len(), 2);
    }
}
