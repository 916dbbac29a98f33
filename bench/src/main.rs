//! `kakeru-bench`: the benches capacity planners run (figures in bench/RESULTS.md), a binary of
//! its own so that the production binary `kakeru` carries no bench code and no bench default.
//! Nothing here has a default that reaches a shared service: the control bench's Redis is a
//! required flag, its database a scratch one.

use clap::{Parser, Subcommand};

/// The same allocator as `kakeru` (mimalloc), so that the benches measure what production runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kakeru-bench", version, about = "kakeru's benches (bench/RESULTS.md)")]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// CSV lead import through the API: a CP932 file with bad rows, on SQLite and PostgreSQL.
    Import(bench::storage::ImportArgs),
    /// Selecting a call job's next dialable leads over a large list, on SQLite and PostgreSQL.
    Leads(bench::storage::LeadsArgs),
    /// The reports over a generated history: rollups rebuilt, each report over 31 days through the
    /// API, a 31-day call-history CSV streamed; on SQLite and PostgreSQL.
    Reports(bench::reports::ReportsArgs),
    /// Predictive pacing in the floor simulator against the baselines.
    Pacing(bench::pacing::PacingArgs),
    /// RTP relay on loopback: N two-leg calls through one pinned shard, optionally against rtpengine.
    Media(bench::media::MediaArgs),
    /// The control service over Redis on the database given: state changes per second and
    /// command-to-wallboard latency.
    Control(bench::control::ControlArgs),
    /// Control's fail-over on leases: kill -9 of the active `kakeru control` N times, the time until
    /// the standby applies the next command (median, max).
    Failover(bench::failover::FailoverArgs),
    /// Dialer hosts on leases in one process: dials a second with 1, 2 and 3 hosts, and the time
    /// until another host dials a campaign after its host died (median, max).
    Hosts(bench::hosts::HostsArgs),
    /// The agents' push channel: N connected agents, R state changes a second in all.
    Agents(bench::agents::AgentsArgs),
    /// Issue 18's attacks on one `kakeru api` process: wrong logins from many addresses (memory,
    /// another tenant's latency), slow connections, SIGTERM with them open.
    Logins(bench::logins::LoginsArgs),
    /// Agents claiming callbacks (折り返し呼) at once through the API: 0 double assignments, claim p99.
    Callbacks(bench::callbacks::CallbacksArgs),
    /// SIP call set-ups a second on one dialer shard against sipp as the UAS, and memory per held call.
    Sip(bench::sip::SipArgs),
    /// The Opus archive pool: call-minutes of recordings encoded per core-second (needs `--features opus`).
    Opus(bench::opus::OpusArgs),
    /// Browser phones' WebRTC agent legs (PCMU, Opus) on one pinned shard beside plain RTP legs:
    /// loss, relay CPU per call and latency (`--features media/opus` for Opus).
    Webrtc(bench::webrtc::WebRtcArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The same metrics recorder as a role of `kakeru` (the shards' drivers flush to it).
    telemetry::install("bench")?;
    match cli.bench {
        Bench::Import(args) => bench::storage::run_import(&args).await?,
        Bench::Leads(args) => bench::storage::run_leads(&args).await?,
        Bench::Reports(args) => bench::reports::run(&args).await?,
        Bench::Pacing(args) => tokio::task::spawn_blocking(move || bench::pacing::run(&args)).await??,
        Bench::Media(args) => tokio::task::spawn_blocking(move || bench::media::run(&args)).await??,
        Bench::Control(args) => bench::control::run(&args).await?,
        Bench::Agents(args) => bench::agents::run(&args).await?,
        Bench::Failover(args) => bench::failover::run(&args).await?,
        Bench::Hosts(args) => bench::hosts::run(&args).await?,
        Bench::Logins(args) => bench::logins::run(&args).await?,
        Bench::Callbacks(args) => bench::callbacks::run(&args).await?,
        Bench::Sip(args) => tokio::task::spawn_blocking(move || bench::sip::run(&args)).await??,
        Bench::Opus(args) => tokio::task::spawn_blocking(move || bench::opus::run(&args)).await??,
        Bench::Webrtc(args) => tokio::task::spawn_blocking(move || bench::webrtc::run(&args)).await??,
    }
    Ok(())
}
