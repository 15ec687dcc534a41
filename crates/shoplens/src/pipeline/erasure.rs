//! Erasure in the running pipeline.
//!
//! At start, before a message is read, every request in `erasure_requests`
//! joins the forgotten set; requests no instance has applied yet (made
//! while none ran) become jobs. Then a poller reads the table every
//! `erasure.poll_interval_ms` and hands new requests to the consume loop,
//! which, at its next step:
//! 1. adds them to the set: from then on the person's events and facts are
//!    dropped unread, and stores loaded later forget them on load;
//! 2. drops their open state in every store it holds;
//! 3. hands the writer a job with the next batch. The writer runs it after
//!    that batch's rows are durable, so no row of the person built before
//!    step 2 lands after the deletion: it deletes their rows, then writes
//!    the audit row.
//!
//! Rows of the person that an advance makes after step 1 (none should:
//! their state is gone) are withheld from writes all the same.

use std::collections::BTreeSet;
use std::time::Duration;

use exporter::{ErasureRequest, ErasureStore};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::consume::Ingest;
use super::PipelineError;
use crate::erasure::Forgotten;
use crate::settings::Settings;

/// A request to apply in ClickHouse, with what the stores dropped for it.
#[derive(Debug, Clone)]
pub(crate) struct ErasureJob {
    pub(crate) request: ErasureRequest,
    /// Items of open state dropped (events, sessions, carts, orders,
    /// customers).
    pub(crate) open_state: u64,
}

/// The consume loop's side: new requests, and jobs for the next batch.
pub(crate) struct Erasure {
    incoming: mpsc::UnboundedReceiver<ErasureRequest>,
    /// Jobs to hand the writer with the next batch.
    pub(crate) jobs: Vec<ErasureJob>,
    poller: JoinHandle<()>,
}

impl Drop for Erasure {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// Reads every request (refusing to start on one made with another salt)
/// and starts the poller. Returns the forgotten set and the consume side.
pub(crate) async fn start(settings: &Settings) -> Result<(Forgotten, Erasure), PipelineError> {
    let store = ErasureStore::new(&settings.clickhouse);
    let requests = store.requests().await?;
    let audited: BTreeSet<String> = store.audited().await?.into_iter().collect();
    let mut forgotten = Forgotten::new(&settings.erasure.salt);
    let mut jobs = Vec::new();
    for request in requests {
        forgotten.add(&request)?;
        if !audited.contains(&request.request_id) {
            jobs.push(ErasureJob {
                request,
                open_state: 0,
            });
        }
    }
    if !forgotten.is_empty() {
        info!(
            requests = forgotten.len(),
            unapplied = jobs.len(),
            "erasure requests read"
        );
    }
    let (tx, incoming) = mpsc::unbounded_channel();
    let every = Duration::from_millis(settings.erasure.poll_interval_ms.max(100));
    let known: BTreeSet<String> = forgotten.request_ids().cloned().collect();
    let poller = tokio::spawn(poll(store, every, known, tx));
    let erasure = Erasure {
        incoming,
        jobs,
        poller,
    };
    Ok((forgotten, erasure))
}

/// Reads the requests every `every`, sending those not seen before.
async fn poll(
    store: ErasureStore,
    every: Duration,
    mut known: BTreeSet<String>,
    tx: mpsc::UnboundedSender<ErasureRequest>,
) {
    loop {
        tokio::time::sleep(every).await;
        match store.requests().await {
            Ok(requests) => {
                for r in requests {
                    if known.insert(r.request_id.clone()) && tx.send(r).is_err() {
                        return;
                    }
                }
            }
            Err(e) => warn!(error = %e, "erasure: cannot read new requests; trying again"),
        }
    }
}

impl Ingest {
    /// Keeps forgotten persons' rows out of what is about to be written.
    pub(super) fn withhold(
        &mut self,
        out: &mut aggregator::Output,
        customers: &mut aggregator::CustomerOutput,
    ) {
        let withheld = self.stores.withhold(out, customers);
        self.metrics.erasure_rows_withheld.inc_by(withheld);
    }

    /// Takes the requests the poller found: each joins the forgotten set,
    /// every store drops the person's state, and a job waits for the next
    /// batch.
    pub(super) fn take_erasures(&mut self) {
        while let Ok(request) = self.erasure.incoming.try_recv() {
            match self.stores.forget(&request) {
                Ok(forgot) => {
                    info!(
                        request = %request.request_id,
                        kind = %request.id_kind,
                        events = forgot.events,
                        sessions = forgot.sessions,
                        carts = forgot.carts,
                        orders = forgot.orders,
                        customers = forgot.customers,
                        "erasure: open state dropped"
                    );
                    self.erasure.jobs.push(ErasureJob {
                        request,
                        open_state: forgot.total(),
                    });
                }
                Err(e) => error!(error = %e, "erasure request not honoured"),
            }
        }
        let known = self.stores.forgotten().len();
        self.metrics.erasure_requests.set(known as i64);
    }
}

/// The writer's stage for erasure jobs: once a batch's rows are durable,
/// deletes each person's rows and writes the audit row, retrying (with the
/// sink's backoff) until ClickHouse has done both.
pub(crate) struct Eraser {
    store: ErasureStore,
    salt: String,
    /// Names this instance in the audit.
    instance: String,
    retry: (u64, u64),
}

impl Eraser {
    /// The stage for `settings`.
    pub(crate) fn new(settings: &Settings) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let ch = &settings.clickhouse;
        Eraser {
            store: ErasureStore::new(ch),
            salt: settings.erasure.salt.clone(),
            instance: format!("{host}:{}", std::process::id()),
            retry: (ch.retry_initial_ms, ch.retry_max_ms),
        }
    }

    /// Applies `jobs` in order. A deletion ClickHouse refuses this user is
    /// not retried: the request stays unapplied (the person's rows are
    /// still withheld from writes) for `shoplens forget --apply-pending`,
    /// run as an administrator, or an instance allowed to delete.
    pub(crate) async fn apply(&self, jobs: &[ErasureJob], metrics: &exporter::Metrics) {
        for job in jobs {
            let mut backoff = contract::Backoff::from_millis(self.retry.0, self.retry.1);
            loop {
                match self.apply_one(job).await {
                    Ok(()) => {
                        metrics.erasures_applied.inc();
                        break;
                    }
                    Err(e) if exporter::clickhouse::erasure_refused(&e) => {
                        error!(
                            error = %e,
                            request = %job.request.request_id,
                            "erasure: ClickHouse refuses this user the deletion; grant it \
                             ALTER DELETE (deploy/clickhouse/access.sql) or run \
                             `shoplens forget --apply-pending` as an administrator"
                        );
                        metrics.erasures_failed.inc();
                        break;
                    }
                    Err(e) => {
                        let wait = backoff.next_wait();
                        warn!(error = %e, request = %job.request.request_id, ?wait, "erasure: retrying");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    }

    async fn apply_one(&self, job: &ErasureJob) -> Result<(), exporter::SinkError> {
        let r = &job.request;
        let deleted = (self.store)
            .apply(r, &self.salt, &self.instance, job.open_state)
            .await?;
        info!(
            request = %r.request_id,
            sessions = deleted[0],
            carts = deleted[1],
            customers = deleted[2],
            orders = deleted[3],
            open_state = job.open_state,
            "erasure applied"
        );
        Ok(())
    }
}
