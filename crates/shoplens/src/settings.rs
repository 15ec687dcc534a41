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
    #[serde(deserialize_with = "aggregator_section", default = "aggregator_unset")]
    pub aggregator: AggregatorConfig,
    /// ClickHouse connection.
    pub clickhouse: ClickHouseSettings,
    /// The contract's configurable parts.
    pub contract: ContractSettings,
    /// The HTTP endpoint.
    pub http: HttpSettings,
    /// Batching and channel sizes.
    pub pipeline: PipelineSettings,
    /// Erasure requests (`shoplens forget`).
    pub erasure: crate::erasure::ErasureSettings,
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
    /// Earliest accepted event time, RFC 3339 (older events are dead-lettered
    /// as `bad_timestamp`). Set it earlier to load an older order history.
    pub earliest_event_time: String,
    /// Latest accepted event time (exclusive), RFC 3339.
    pub latest_event_time: String,
}

impl Default for ContractSettings {
    fn default() -> Self {
        ContractSettings {
            default_currency: "USD".into(),
            currencies: vec!["USD".into()],
            skew_threshold_ms: 60_000,
            earliest_event_time: "1990-01-01T00:00:00Z".into(),
            latest_event_time: "2100-01-01T00:00:00Z".into(),
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
    /// a restart re-reads them and skips them unapplied. It covers
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
            write_min_rows: 100_000,
            write_linger_ms: 1_000,
            shutdown_timeout_ms: 10_000,
            checkpoint_interval_ms: 5_000,
            checkpoint_bytes_per_sec: 2 * 1024 * 1024,
            checkpoint_max_interval_ms: 60_000,
            resume_overlap_messages: 1_000,
        }
    }
}

/// The definitions' defaults when the `[aggregator]` section is absent,
/// the reporting currency left to follow the contract's default currency.
fn aggregator_unset() -> AggregatorConfig {
    AggregatorConfig {
        reporting_currency: String::new(),
        ..AggregatorConfig::default()
    }
}

/// The `[aggregator]` section: the metric definitions, and the memory
/// bounds of open sessions, carts, order rows and touches (and the
/// attribution window), which checkpoints do not carry (so the
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
        order_rows_retention_ms: Option<i64>,
        max_order_rows: Option<usize>,
        attribution_window_ms: Option<i64>,
        attribution_max_touches: Option<usize>,
        max_touch_visitors: Option<usize>,
        /// Unset or empty: the contract's default currency (resolved later).
        reporting_currency: Option<String>,
    }
    let section = Section::deserialize(d)?;
    let mut cfg = section.cfg;
    cfg.reporting_currency = section.reporting_currency.unwrap_or_default();
    for (bound, value) in [
        (&mut cfg.max_open_sessions, section.max_open_sessions),
        (&mut cfg.max_open_carts, section.max_open_carts),
        (&mut cfg.max_abandoned_carts, section.max_abandoned_carts),
        (&mut cfg.max_order_rows, section.max_order_rows),
        (
            &mut cfg.attribution_max_touches,
            section.attribution_max_touches,
        ),
        (&mut cfg.max_touch_visitors, section.max_touch_visitors),
    ] {
        if let Some(n) = value {
            *bound = n;
        }
    }
    for (ms, value) in [
        (
            &mut cfg.order_rows_retention_ms,
            section.order_rows_retention_ms,
        ),
        (
            &mut cfg.attribution_window_ms,
            section.attribution_window_ms,
        ),
    ] {
        if let Some(v) = value {
            *ms = v;
        }
    }
    Ok(cfg)
}

/// A load error with the `SECTION__KEY` variables set for the section it
/// names: the config crate reports a flattened section's bad value as the
/// section alone (`for key aggregator`), not the key or the variable.
fn explain(e: config::ConfigError) -> config::ConfigError {
    let text = e.to_string();
    let vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| {
            k.split_once("__").is_some_and(|(section, _)| {
                text.contains(&format!("key `{}", section.to_ascii_lowercase()))
            })
        })
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    if vars.is_empty() {
        return e;
    }
    config::ConfigError::Message(format!(
        "{text}; environment overrides of that section: {}",
        vars.join(", ")
    ))
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
        let loaded = b.add_source(env).build().and_then(|c| c.try_deserialize());
        let mut settings: Settings = loaded.map_err(|e| SettingsError::Load(explain(e)))?;
        settings.resolve_reporting_currency()?;
        // A payment may precede its order by as much as events may be late.
        settings.aggregator.settle_grace_ms = settings.watermark.allowed_lateness_ms.max(0);
        settings.decode_options()?;
        Ok(settings)
    }

    /// Session and experiment revenue are summed in one currency. Unset, it
    /// is the store's: the one currency `contract.currencies` lists, else
    /// `contract.default_currency`. It must be one the contract accepts, or
    /// every such sum would silently read 0.
    fn resolve_reporting_currency(&mut self) -> Result<(), SettingsError> {
        let agg = &mut self.aggregator;
        if agg.reporting_currency.trim().is_empty() {
            agg.reporting_currency = match self.contract.currencies.as_slice() {
                [only] => only.to_ascii_uppercase(),
                _ => self.contract.default_currency.to_ascii_uppercase(),
            };
        }
        agg.reporting_currency.make_ascii_uppercase();
        let accepted = |c: &str| {
            c.eq_ignore_ascii_case(&self.contract.default_currency)
                || self
                    .contract
                    .currencies
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(c))
        };
        if !accepted(&agg.reporting_currency) {
            return Err(SettingsError::Invalid(format!(
                "aggregator.reporting_currency (env AGGREGATOR__REPORTING_CURRENCY) = {:?} is not \
                 an accepted currency ({:?}, contract.currencies): session and experiment \
                 revenue would always be 0; leave it unset to follow the store's currency",
                agg.reporting_currency, self.contract.currencies
            )));
        }
        Ok(())
    }

    /// Accepted currencies whose money session and experiment revenue do
    /// not include (they show in the revenue tables, by currency).
    pub fn unreported_currencies(&self) -> Vec<String> {
        let mut others: Vec<String> = std::iter::once(&self.contract.default_currency)
            .chain(&self.contract.currencies)
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| *c != self.aggregator.reporting_currency)
            .collect();
        others.sort();
        others.dedup();
        others
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
        let time = |key: &str, value: &str| {
            contract::time::parse_rfc3339(value).ok_or_else(|| {
                SettingsError::Invalid(format!(
                    "contract.{key} (env CONTRACT__{}) = {value:?} is not an RFC 3339 time from 1900 to 2100, e.g. \"1990-01-01T00:00:00Z\"",
                    key.to_ascii_uppercase()
                ))
            })
        };
        let earliest_ms = time("earliest_event_time", &self.contract.earliest_event_time)?;
        if earliest_ms < 0 {
            return Err(SettingsError::Invalid(
                "contract.earliest_event_time (env CONTRACT__EARLIEST_EVENT_TIME) must be 1970 or later: ClickHouse DateTime columns start there".into(),
            ));
        }
        let latest_ms = time("latest_event_time", &self.contract.latest_event_time)?;
        if earliest_ms >= latest_ms {
            return Err(SettingsError::Invalid(
                "contract.earliest_event_time must be before contract.latest_event_time".into(),
            ));
        }
        Ok(DecodeOptions {
            default_currency,
            currencies,
            skew_threshold_ms: self.contract.skew_threshold_ms,
            earliest_ms,
            latest_ms,
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
        std::env::set_var("AGGREGATOR__ORDER_ROWS_RETENTION_MS", "86400000");
        std::env::set_var("AGGREGATOR__SESSION_GAP_MS", "60000");
        let loaded = Settings::load(Some(&file));
        std::env::remove_var("AGGREGATOR__MAX_OPEN_SESSIONS");
        std::env::remove_var("AGGREGATOR__MAX_ABANDONED_CARTS");
        std::env::remove_var("AGGREGATOR__ORDER_ROWS_RETENTION_MS");
        std::env::remove_var("AGGREGATOR__SESSION_GAP_MS");
        let loaded = loaded.expect("loads with overrides");
        assert_eq!(loaded.aggregator.max_open_sessions, 5000);
        assert_eq!(loaded.aggregator.max_abandoned_carts, 7);
        assert_eq!(loaded.aggregator.order_rows_retention_ms, 86_400_000);
        assert_eq!(loaded.aggregator.max_order_rows, 1_000_000);
        assert_eq!(loaded.aggregator.max_open_carts, 1_000_000);
        assert_eq!(loaded.aggregator.session_gap_ms, 60_000);
        assert_eq!(loaded.aggregator.dedup_max_ids, 2_000_000);

        // A bad value names the variable that set it, not only the section.
        std::env::set_var("AGGREGATOR__SESSION_GAP_MS", "abc");
        let err = Settings::load(Some(&file)).expect_err("abc is no number");
        std::env::remove_var("AGGREGATOR__SESSION_GAP_MS");
        assert!(
            err.to_string()
                .contains("AGGREGATOR__SESSION_GAP_MS=\"abc\""),
            "{err}"
        );

        // A rouble store that lists its one currency and leaves the default
        // currency alone: session and experiment revenue follow the store's
        // currency, not a silent 0 in USD.
        std::env::set_var("CONTRACT__CURRENCIES", "RUB");
        let rub = Settings::load(None);
        std::env::set_var("CONTRACT__DEFAULT_CURRENCY", "RUB");
        let rub_default = Settings::load(None);
        // An explicit reporting currency the store never accepts is refused.
        std::env::set_var("AGGREGATOR__REPORTING_CURRENCY", "EUR");
        let refused = Settings::load(None);
        std::env::remove_var("AGGREGATOR__REPORTING_CURRENCY");
        std::env::remove_var("CONTRACT__DEFAULT_CURRENCY");
        std::env::remove_var("CONTRACT__CURRENCIES");
        let rub = rub.expect("a rouble store loads");
        assert_eq!(rub.aggregator.reporting_currency, "RUB");
        let rub_default = rub_default.expect("a rouble store loads");
        assert_eq!(rub_default.aggregator.reporting_currency, "RUB");
        assert!(rub_default.unreported_currencies().is_empty());
        let refused = refused.expect_err("EUR is not accepted").to_string();
        assert!(
            refused.contains("AGGREGATOR__REPORTING_CURRENCY"),
            "{refused}"
        );
        // The shipped example accepts four currencies and reports USD.
        assert_eq!(
            Settings::load(Some(&file)).unwrap().unreported_currencies(),
            ["EUR", "GBP", "RUB"]
        );
    }
}
