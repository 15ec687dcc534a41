//! `shoplens`: the storefront metrics pipeline and its tools.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use shoplens::generate::{produce, GenConfig, Generator, ProduceOptions};
use shoplens::{http_get, summary, Pipeline, Settings};
use tracing::{error, info};

mod allocator;

#[derive(Parser)]
#[command(
    name = "shoplens",
    version,
    about = "Storefront event-stream metrics: Kafka in, ClickHouse and Prometheus out"
)]
struct Cli {
    /// Configuration file (TOML); `SECTION__KEY` environment variables override it.
    #[arg(long, global = true, env = "SHOPLENS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline until SIGTERM or Ctrl-C.
    Run {
        /// A bounded run (a backfill): read every input partition up to the
        /// end offsets found at start, close everything as if time had run
        /// out, write it, commit, print a summary and exit 0.
        #[arg(long)]
        until_end: bool,
    },
    /// Produce realistic storefront traffic to Kafka.
    Generate(GenerateArgs),
    /// Produce events from JSON lines (a file, or stdin) to their topics, for backfills.
    Replay {
        /// The file to read; stdin when absent or `-`. Close the replayed
        /// history with `shoplens run --until-end`.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Create the contract's topics (clickstream and orders co-partitioned).
    Topics {
        /// Partitions of each input topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Replication factor.
        #[arg(long, default_value_t = 1)]
        replication: i32,
    },
    /// Forget a person (erasure): record a durable request that every
    /// instance honours, replays included, and wait for it to be applied.
    #[command(group(clap::ArgGroup::new("who").required(true)))]
    Forget {
        /// The visitor's cookie or device id.
        #[arg(long, group = "who")]
        anonymous_id: Option<String>,
        /// The customer's account id.
        #[arg(long, group = "who")]
        user_id: Option<String>,
        /// Seconds to wait for a running pipeline to apply it (0: do not wait).
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Print the statements that count and delete the person's rows on a
        /// current server (23.3 on), and record nothing.
        #[arg(long)]
        print_sql: bool,
        /// Instead, delete the rows of every request no instance could apply
        /// (its user may not delete) and audit them: run as an administrator.
        #[arg(long, group = "who")]
        apply_pending: bool,
    },
    /// Apply the ClickHouse migrations (as a user allowed to run DDL).
    Migrate {
        /// Print every statement a first migration runs, for the configured
        /// layout (one server or `clickhouse.cluster`), and apply nothing.
        #[arg(long)]
        print: bool,
    },
    /// Measure decode + validate + every aggregate in process on one core.
    Bench {
        /// Messages of the generator's mix to process (or, with `--input`,
        /// at most this many of the file's).
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        /// Events as JSON lines (as `replay` reads them) instead of the
        /// generator's mix: an export, or `../shared/bench`'s events.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Instead, pre-load fresh topics with this many minutes of traffic
        /// and time broker -> pipeline -> ClickHouse.
        #[arg(long)]
        end_to_end_minutes: Option<i64>,
        /// Sessions per minute of the pre-loaded traffic (about 10 events each).
        #[arg(long, default_value_t = 1000.0)]
        sessions_per_minute: f64,
        /// Instead, open this many sessions (one page view each) and report
        /// the memory held per open session.
        #[arg(long)]
        open_sessions: Option<usize>,
        /// Instead, feed fresh topics at about this many messages per second
        /// while the pipeline runs, and report whether its lag stays flat.
        #[arg(long)]
        steady_rate: Option<f64>,
        /// Minutes of the steady feed.
        #[arg(long, default_value_t = 5.0)]
        steady_minutes: f64,
    },
    /// Print live figures from a running pipeline's /metrics.
    Summary {
        /// host:port of the pipeline's HTTP endpoint.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics: String,
        /// Seconds between lines.
        #[arg(long, default_value_t = 5)]
        every: u64,
        /// Seconds to watch; 0 prints once.
        #[arg(long = "for", default_value_t = 0)]
        watch_for: u64,
        /// host:port of a Prometheus scraping the pipeline: also print what it holds.
        #[arg(long)]
        prometheus: Option<String>,
    },
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Target events per second (wall clock).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds to run (wall clock).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Event time runs this many times faster than the wall clock, so that
    /// sessions (30-minute gap) close within a short run.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Send as fast as possible instead of pacing by event time.
    #[arg(long)]
    fast: bool,
    /// PRNG seed: the same seed gives the same traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of carts abandoned.
    #[arg(long, default_value_t = 0.7)]
    abandon_ratio: f64,
    /// Extra invalid messages per event.
    #[arg(long, default_value_t = 0.005)]
    invalid_ratio: f64,
    /// Share of events sent twice.
    #[arg(long, default_value_t = 0.01)]
    duplicate_ratio: f64,
    /// Largest out-of-order delay in milliseconds (keep under the allowed lateness).
    #[arg(long, default_value_t = 5000)]
    max_disorder_ms: i64,
    /// Do not send the closing page views that let every session close.
    #[arg(long)]
    no_flush: bool,
}

/// `n` per second over `secs`.
fn per_sec(n: u64, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

/// Prints a line; a closed stdout is not an error for a report.
fn println_quiet(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let config = cli.config.or_else(|| {
        let default = PathBuf::from("config/shoplens.toml");
        default.exists().then_some(default)
    });
    let settings = Settings::load(config.as_deref())?;
    match cli.command {
        Command::Run { until_end } => run_pipeline(settings, until_end).await?,
        Command::Generate(a) => generate(&settings, &a).await?,
        Command::Replay { input } => replay(&settings, input).await?,
        Command::Topics {
            partitions,
            replication,
        } => ingest::admin::create_topics(&settings.kafka, partitions, replication).await?,
        Command::Bench {
            open_sessions: Some(n),
            ..
        } => {
            let m = shoplens::bench::open_sessions(n, settings.aggregator.clone());
            println_quiet(&format!(
                "{} open sessions: {:.0} bytes of resident memory each ({:.0} before the allocator returned freed memory)",
                m.open, m.held, m.as_is
            ));
        }
        Command::Bench {
            steady_rate: Some(rate),
            steady_minutes,
            sessions_per_minute,
            ..
        } => bench_steady(settings, rate, steady_minutes, sessions_per_minute).await?,
        Command::Bench {
            end_to_end_minutes: Some(minutes),
            sessions_per_minute,
            ..
        } => bench_end_to_end(settings, minutes, sessions_per_minute).await?,
        Command::Bench {
            messages, input, ..
        } => bench_in_process(&settings, messages, input)?,
        Command::Migrate { print } => migrate(&settings, print).await?,
        Command::Forget {
            anonymous_id,
            user_id,
            wait,
            print_sql,
            apply_pending,
        } => {
            let who = shoplens::erasure::Who {
                anonymous_id,
                user_id,
                apply_pending,
            };
            let wait = std::time::Duration::from_secs(wait);
            let lines = shoplens::erasure::command(&settings, who, wait, print_sql).await?;
            println!("{}", lines.join("\n"));
        }
        Command::Summary {
            metrics,
            every,
            watch_for,
            prometheus,
        } => watch_summary(&metrics, every, watch_for, prometheus).await?,
    }
    Ok(())
}

type Outcome = Result<(), Box<dyn std::error::Error>>;

/// `run`: the pipeline until a signal, or (`--until-end`) to the end of its
/// input.
async fn run_pipeline(settings: Settings, until_end: bool) -> Outcome {
    let others = settings.unreported_currencies();
    if !others.is_empty() {
        tracing::warn!(
            reporting_currency = %settings.aggregator.reporting_currency,
            other_currencies = ?others,
            "session and experiment revenue sum the reporting currency only; the other \
             accepted currencies count in the revenue and order tables by currency, and \
             customers in their own (aggregator.reporting_currency, env AGGREGATOR__REPORTING_CURRENCY)"
        );
    }
    if until_end {
        let pipeline = Pipeline::start_until_end(settings).await?;
        let metrics = pipeline.metrics().clone();
        let started = std::time::Instant::now();
        pipeline.run_until(shutdown_signal()).await?;
        let text = metrics.render();
        println_quiet(&format!(
                "bounded run done in {:.1} s: read to the end of the input, every deadline passed, written and committed\n{}\n{}",
                started.elapsed().as_secs_f64(),
                shoplens::summary::line(&text, now_ms() as f64 / 1000.0),
                shoplens::summary::table(&text)
            ));
        return Ok(());
    }
    let pipeline = Pipeline::start(settings).await?;
    pipeline
        .run_until(async {
            shutdown_signal().await;
            info!("shutting down");
        })
        .await?;
    Ok(())
}

/// `generate`: realistic traffic produced to the contract's topics.
async fn generate(settings: &Settings, a: &GenerateArgs) -> Outcome {
    let avg_events_per_session = 9.0;
    let sim_ms = (a.duration as f64 * 1000.0 * a.speed) as i64;
    // The traffic ends where its closing page views (the flush, one
    // horizon later) are now, not in the future: an event is not taken to
    // happen after the message carrying it is produced (the contract's
    // clock rule), so a flush ahead of the wall clock would be pulled back.
    let flush = (!a.no_flush).then(|| shoplens::generate::flush_horizon_ms(settings));
    let start_ms = now_ms() - sim_ms - flush.unwrap_or(0);
    let cfg = GenConfig {
        seed: a.seed,
        start_ms,
        duration_ms: sim_ms,
        sessions_per_minute: a.rate * 60.0 / a.speed / avg_events_per_session,
        cart_abandon_ratio: a.abandon_ratio,
        invalid_ratio: a.invalid_ratio,
        duplicate_ratio: a.duplicate_ratio,
        max_disorder_ms: a.max_disorder_ms,
        ..GenConfig::default()
    };
    let opts = ProduceOptions {
        speed: (!a.fast).then_some(a.speed),
        flush_after_ms: flush,
    };
    let report = produce(&settings.kafka, Generator::new(cfg), start_ms, &opts).await?;
    let g = report.generated;
    let _ = writeln!(
            std::io::stdout(),
            "produced {} messages: {} valid events ({} from bots), {} duplicates, {} invalid, {} flush; {} sessions, {} page views, {} bounces, {} carts, {} orders ({} paid), revenue {}.{:02}",
            g.messages + report.flush_messages, g.valid_events + g.bot_events, g.bot_events, g.duplicates,
            g.invalid, report.flush_messages, g.sessions, g.page_views, g.bounces, g.carts, g.orders, g.paid,
            g.revenue_minor / 100, g.revenue_minor % 100
        );
    Ok(())
}

/// `replay`: an export (JSON lines) produced to the contract's topics.
async fn replay(settings: &Settings, input: Option<PathBuf>) -> Outcome {
    let opts = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    let report = match input.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            let file = std::io::BufReader::new(std::fs::File::open(&path)?);
            shoplens::replay::replay(&settings.kafka, file, &opts).await?
        }
        None => shoplens::replay::replay(&settings.kafka, std::io::stdin().lock(), &opts).await?,
    };
    println_quiet(&format!(
        "replayed {} messages; `shoplens run --until-end` reads and closes them",
        report.generated.messages
    ));
    Ok(())
}

/// `bench --steady-rate`: a steady feed, its lag and memory.
async fn bench_steady(
    settings: Settings,
    rate: f64,
    steady_minutes: f64,
    sessions_per_minute: f64,
) -> Outcome {
    let suffix = format!(".steady{}", now_ms());
    let r = shoplens::bench::steady(settings, &suffix, rate, steady_minutes, sessions_per_minute)
        .await?;
    let mut sorted = r.lag.clone();
    sorted.sort_unstable();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    println_quiet(&format!(
            "steady feed: {} messages produced in {:.1} s ({:.0}/s); after a 30 s warm-up {} consumed in {:.1} s ({:.0}/s); lag min {} / median {} / max {} messages, trend {:+.1} messages/s over {} samples; peak RSS {:.0} MiB",
            r.produced,
            r.produce_secs,
            per_sec(r.produced, r.produce_secs),
            r.consumed,
            r.measured_secs,
            per_sec(r.consumed, r.measured_secs),
            at(0.0),
            at(0.5),
            at(1.0),
            r.lag_slope,
            r.lag.len(),
            r.peak_rss_bytes as f64 / 1048576.0
        ));
    Ok(())
}

/// `bench --end-to-end-minutes`: a pre-loaded backlog through the whole
/// pipeline.
async fn bench_end_to_end(settings: Settings, minutes: i64, sessions_per_minute: f64) -> Outcome {
    let suffix = format!(".bench{}", now_ms());
    let r = shoplens::bench::end_to_end(settings, &suffix, minutes, sessions_per_minute).await?;
    println_quiet(&format!(
            "{} messages pre-loaded in {:.1} s; consumed in {:.1} s ({:.0}/s); all {} sessions written in {:.1} s ({:.0} events/s end to end); {} rows in {} inserts ({:.0} rows/insert); result delay p50 <= {} s, p99 <= {} s; max lag {} messages; peak RSS {:.0} MiB",
            r.messages,
            r.produce_secs,
            r.consume_secs,
            per_sec(r.messages, r.consume_secs),
            r.sessions,
            r.settled_secs,
            per_sec(r.messages, r.settled_secs),
            r.rows,
            r.inserts,
            r.rows as f64 / r.inserts.max(1) as f64,
            r.delay_p50,
            r.delay_p99,
            r.max_lag,
            r.peak_rss_bytes as f64 / 1048576.0
        ));
    let phases: Vec<String> = exporter::metrics::INGEST_PHASES
        .iter()
        .zip(r.phases)
        .map(|(phase, s)| format!("{phase} {s:.1} s"))
        .collect();
    println_quiet(&format!(
        "ingest task until consumed: {}",
        phases.join(", ")
    ));
    Ok(())
}

/// `bench`: decode and aggregate in process, on one core.
fn bench_in_process(settings: &Settings, messages: usize, input: Option<PathBuf>) -> Outcome {
    let (cfg, lateness) = (
        settings.aggregator.clone(),
        settings.watermark.allowed_lateness_ms,
    );
    let r = match input {
        Some(path) => {
            let file = std::io::BufReader::new(std::fs::File::open(&path)?);
            let input = shoplens::bench::input_from(file, messages)?;
            let decoder = contract::Decoder::new(settings.decode_options()?);
            shoplens::bench::run_on(&input, &decoder, cfg, lateness)
        }
        None => shoplens::bench::run(messages, cfg, lateness),
    };
    println_quiet(&format!(
            "{} messages ({:.0} bytes each): decode {:.0}/s; decode + aggregate {:.0}/s ({:.1} s); {} rows; peak RSS {:.0} MiB",
            r.messages,
            r.bytes as f64 / r.messages.max(1) as f64,
            r.messages as f64 / r.decode_secs,
            r.messages as f64 / r.total_secs,
            r.total_secs,
            r.rows,
            r.peak_rss_bytes as f64 / 1048576.0
        ));
    Ok(())
}

/// `migrate`: applies (or prints) the ClickHouse migrations.
async fn migrate(settings: &Settings, print: bool) -> Outcome {
    if print {
        for stmt in exporter::clickhouse::plan(&settings.clickhouse)? {
            println!("{stmt};\n");
        }
    } else {
        let applied = exporter::clickhouse::migrate(&settings.clickhouse)
            .await
            .map_err(|e| e.at(&settings.clickhouse.url))?;
        info!(?applied, "migrations applied");
    }
    Ok(())
}

/// `summary`: the live figures from `/metrics`, and Prometheus' if asked.
async fn watch_summary(
    metrics: &str,
    every: u64,
    watch_for: u64,
    prometheus: Option<String>,
) -> Outcome {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = http_get::get(metrics, "/metrics").await?;
        if status != 200 {
            return Err(format!("GET /metrics answered {status}").into());
        }
        // A closed pipe (e.g. `| head`) ends the summary quietly.
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{}", summary::line(&body, now_ms() as f64 / 1000.0)).is_err() {
            break;
        }
        if started.elapsed().as_secs() >= watch_for {
            let _ = write!(out, "{}", summary::table(&body));
            break;
        }
        drop(out);
        tokio::time::sleep(Duration::from_secs(every.max(1))).await;
    }
    if let Some(prom) = prometheus {
        println_quiet("prometheus holds (sum over instances):");
        for series in summary::PROMETHEUS_SERIES {
            let value = summary::prometheus_value(&prom, &format!("sum({series})")).await;
            println_quiet(&format!("  {series:<42} {}", value.unwrap_or_else(|e| e)));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    allocator::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "failed");
            ExitCode::FAILURE
        }
    }
}
