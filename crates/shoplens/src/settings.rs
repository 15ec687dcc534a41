//! Configuration: a TOML file plus `SECTION__KEY` environment overrides.

use std::collections::HashSet;
use std::path::Path;

use aggregator::AggregatorConfig;
use contract::{Currency, DecodeOptions};
use exporter::ClickHouseSettings;
use ingest::{KafkaSettings, WatermarkSettings};
use serde::Deserialize;

/// Everything the pipeline reads from configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Kafka connection, group and topics.
    pub kafka: KafkaSettings,
    /// Lateness, idleness and alignment.
    pub watermark: WatermarkSettings,
    /// Metric definitions' thresholds, and the open-session bound.
    #[serde(deserialize_with = "aggregator_section")]
    pub aggregator: AggregatorConfig,
    /// ClickHouse connection.
    pub clickhouse: ClickHouseSettings,
    /// The contract's configurable parts.
    pub contract: ContractSettings,
    /// The HTTP endpoint.
    pub http: HttpSettings,
    /// Batching and channel sizes.
    pub pipeline: PipelineSettings,
}

/// Currencies and clock skew.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ContractSettings {
    /// Currency of amounts that name none.
    pub default_currency: String,
    /// Accepted currencies.
    pub currencies: Vec<String>,
    /// Skew above which event time is corrected from `sent_at`.
    pub skew_threshold_ms: i64,
}

impl Default for ContractSettings {
    fn default() -> Self {
        ContractSettings {
            default_currency: "USD".into(),
            currencies: vec!["USD".into()],
            skew_threshold_ms: 60_000,
        }
    }
}

/// Where `/metrics`, `/livez` and `/readyz` listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Listen address; port 0 picks a free port.
    pub listen: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

/// How work moves between the stages.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PipelineSettings {
    /// How often the watermark is advanced and rows are flushed (wall clock).
    pub tick_ms: u64,
    /// Events after which a flush happens even before the tick.
    pub max_batch_events: usize,
    /// Batches waiting for ClickHouse before consumption pauses.
    pub max_batches_in_flight: usize,
    /// The writer merges consecutive batches into one insert per table
    /// until they hold this many rows...
    pub write_min_rows: usize,
    /// ...or the first of them has waited this long (milliseconds; 0 writes
    /// each batch alone).
    pub write_linger_ms: u64,
    /// Longest time to flush and commit on shutdown.
    pub shutdown_timeout_ms: u64,
    /// How often every store is checkpointed (and offsets committed with
    /// it), at least. Longer: less writing, more replay after a crash.
    pub checkpoint_interval_ms: u64,
    /// Checkpoints are whole snapshots: after one of N bytes the next waits
    /// at least N / this many seconds, so a large state writes at most this
    /// many bytes per second on average (0: always the interval above)...
    pub checkpoint_bytes_per_sec: u64,
    /// ...but never longer than this (milliseconds).
    pub checkpoint_max_interval_ms: u64,
    /// Messages the committed position trails the checkpoint by (at least):
    /// a restart re-reads them and skips them before decoding. It covers
    /// brokers that resume a fetch at the next record batch rather than
    /// inside the batch holding the offset asked for (tansu 0.6 does).
    pub resume_overlap_messages: i64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            tick_ms: 200,
            max_batch_events: 50_000,
            max_batches_in_flight: 4,
            write_min_rows: 10_000,
            write_linger_ms: 1_000,
            shutdown_timeout_ms: 10_000,
            checkpoint_interval_ms: 5_000,
            checkpoint_bytes_per_sec: 2 * 1024 * 1024,
            checkpoint_max_interval_ms: 60_000,
            resume_overlap_messages: 1_000,
        }
    }
}

/// The `[aggregator]` section: the metric definitions, and the memory
/// bounds of open sessions and carts, which checkpoints do not carry (so the
/// aggregator does not read them itself).
fn aggregator_section<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<AggregatorConfig, D::Error> {
    #[derive(Deserialize)]
    struct Section {
        #[serde(flatten)]
        cfg: AggregatorConfig,
        max_open_sessions: Option<usize>,
        max_open_carts: Option<usize>,
        max_abandoned_carts: Option<usize>,
    }
    let section = Section::deserialize(d)?;
    let mut cfg = section.cfg;
    for (bound, value) in [
        (&mut cfg.max_open_sessions, section.max_open_sessions),
        (&mut cfg.max_open_carts, section.max_open_carts),
        (&mut cfg.max_abandoned_carts, section.max_abandoned_carts),
    ] {
        if let Some(n) = value {
            *bound = n;
        }
    }
    Ok(cfg)
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file or the environment could not be read.
    #[error("config: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is not acceptable.
    #[error("config: {0}")]
    Invalid(String),
}

impl Settings {
    /// Reads `file` (if given) and then `SECTION__KEY` variables, e.g.
    /// `KAFKA__BROKERS=host:9092` or `CLICKHOUSE__URL=http://ch:8123`.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut b = config::Config::builder();
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).required(true));
        }
        let env = config::Environment::default()
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("contract.currencies")
            .with_list_parse_key("aggregator.funnel_stages")
            .with_list_parse_key("aggregator.channels.own_domains");
        let settings: Settings = b.add_source(env).build()?.try_deserialize()?;
        settings.decode_options()?;
        Ok(settings)
    }

    /// Decoder options from the contract settings.
    pub fn decode_options(&self) -> Result<DecodeOptions, SettingsError> {
        let parse = |c: &str| {
            Currency::parse(c).ok_or_else(|| SettingsError::Invalid(format!("bad currency {c:?}")))
        };
        let default_currency = parse(&self.contract.default_currency)?;
        let mut currencies: HashSet<Currency> = self
            .contract
            .currencies
            .iter()
            .map(|c| parse(c))
            .collect::<Result<_, _>>()?;
        currencies.insert(default_currency);
        Ok(DecodeOptions {
            default_currency,
            currencies,
            skew_threshold_ms: self.contract.skew_threshold_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_config_file_states_the_defaults() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/shoplens.toml");
        let loaded = Settings::load(Some(&file)).expect("config/shoplens.toml loads");
        let mut expected = Settings::default();
        // The two keys the file marks as examples.
        expected.aggregator.channels.own_domains = vec!["shop.example".into()];
        expected.contract.currencies = ["USD", "EUR", "GBP", "RUB"].map(String::from).to_vec();
        assert_eq!(format!("{loaded:?}"), format!("{expected:?}"));

        // An override reaches the bound kept outside checkpoints and the
        // definitions beside it. (One test, so no other sees the variables.)
        std::env::set_var("AGGREGATOR__MAX_OPEN_SESSIONS", "5000");
        std::env::set_var("AGGREGATOR__MAX_ABANDONED_CARTS", "7");
        std::env::set_var("AGGREGATOR__SESSION_GAP_MS", "60000");
        let loaded = Settings::load(Some(&file));
        std::env::remove_var("AGGREGATOR__MAX_OPEN_SESSIONS");
        std::env::remove_var("AGGREGATOR__MAX_ABANDONED_CARTS");
        std::env::remove_var("AGGREGATOR__SESSION_GAP_MS");
        let loaded = loaded.expect("loads with overrides");
        assert_eq!(loaded.aggregator.max_open_sessions, 5000);
        assert_eq!(loaded.aggregator.max_abandoned_carts, 7);
        assert_eq!(loaded.aggregator.max_open_carts, 1_000_000);
        assert_eq!(loaded.aggregator.session_gap_ms, 60_000);
        assert_eq!(loaded.aggregator.dedup_max_ids, 2_000_000);
    }
}
