//! Erasure (the right to be forgotten): the request a person's id becomes,
//! the set of forgotten ids the pipeline checks, and `shoplens forget`.
//!
//! A request keeps only `hex(SHA-256(salt || id))`, never the id. The
//! pipeline hashes the ids of each event (only once a request exists) and
//! of the state it holds with the same salt to find the person, and
//! ClickHouse hashes the id columns to find their rows. Requests live in
//! the table `erasure_requests`, beside the results, so a replay of the
//! raw topics into the same database honours them. The steps and what is
//! out of reach (the raw topics themselves, triggers already sent) are in
//! docs/metrics.md, "Erasure".

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use exporter::{ErasureRequest, ErasureStore, SinkError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The `[erasure]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ErasureSettings {
    /// The salt of every request's hash. Secret, set once per deployment.
    pub salt: String,
    /// How often each instance reads new requests (milliseconds).
    pub poll_interval_ms: u64,
}

impl Default for ErasureSettings {
    fn default() -> Self {
        ErasureSettings {
            salt: String::new(),
            poll_interval_ms: 5_000,
        }
    }
}

/// Why a request cannot be made or honoured.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// No salt is configured.
    #[error(
        "no erasure salt: set erasure.salt in the config file or ERASURE__SALT \
         (a secret, the same for every instance and for `shoplens forget`)"
    )]
    NoSalt,
    /// A request was hashed with another salt than the one configured.
    #[error(
        "erasure request {request} was made with another salt than erasure.salt \
         (ERASURE__SALT): set the salt `shoplens forget` used, or none of its \
         requests can be honoured"
    )]
    OtherSalt {
        /// The request's id.
        request: String,
    },
    /// The id to forget is empty.
    #[error("the id to forget is empty: pass --anonymous-id or --user-id with a value")]
    EmptyId,
    /// ClickHouse refused or could not be reached.
    #[error("erasure requests in ClickHouse: {0} (is `shoplens migrate` done and the server up?)")]
    Store(#[from] SinkError),
}

/// SHA-256 of the salt followed by the id.
fn digest(salt: &str, id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(id.as_bytes());
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The hash a request keeps of `id`: as ClickHouse's
/// `hex(SHA256(concat(salt, id)))` computes it.
pub fn id_hash(salt: &str, id: &str) -> String {
    hex(&digest(salt, id))
}

/// A fingerprint of `salt`, kept with each request, so that an instance
/// configured with another salt says so instead of missing the person.
pub fn salt_check(salt: &str) -> String {
    hex(&digest("shoplens erasure salt check:", salt)[..8])
}

/// The ids the pipeline forgets: the hashes of every request it knows.
#[derive(Debug, Clone, Default)]
pub struct Forgotten {
    salt: String,
    hashes: HashSet<[u8; 32]>,
    requests: BTreeSet<String>,
}

impl Forgotten {
    /// No request yet; hashes are checked with `salt`.
    pub fn new(salt: &str) -> Self {
        Forgotten {
            salt: salt.to_string(),
            ..Forgotten::default()
        }
    }

    /// Whether no id is forgotten (then nothing is hashed).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Requests known.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether `id` is forgotten.
    pub fn covers(&self, id: &str) -> bool {
        !self.hashes.is_empty() && !id.is_empty() && self.hashes.contains(&digest(&self.salt, id))
    }

    /// The ids of the requests known.
    pub fn request_ids(&self) -> impl Iterator<Item = &String> {
        self.requests.iter()
    }

    /// Adds `request` (refused when made with another salt).
    pub fn add(&mut self, request: &ErasureRequest) -> Result<(), ErasureError> {
        if self.salt.is_empty() {
            return Err(ErasureError::NoSalt);
        }
        let hash = unhex(&request.id_hash);
        match hash {
            Some(hash) if request.salt_check == salt_check(&self.salt) => {
                self.hashes.insert(hash);
                self.requests.insert(request.request_id.clone());
                Ok(())
            }
            _ => Err(ErasureError::OtherSalt {
                request: request.request_id.clone(),
            }),
        }
    }
}

/// Whom `shoplens forget` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A visitor's cookie or device id.
    AnonymousId(String),
    /// A signed-in customer's account id.
    UserId(String),
}

impl Subject {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Subject::AnonymousId(id) => ("anonymous_id", id),
            Subject::UserId(id) => ("user_id", id),
        }
    }
}

/// The request `subject` becomes at `now_ms`, hashed with `salt`.
pub fn request_for(
    subject: &Subject,
    salt: &str,
    now_ms: i64,
) -> Result<ErasureRequest, ErasureError> {
    let (kind, id) = subject.parts();
    if salt.is_empty() {
        return Err(ErasureError::NoSalt);
    }
    if id.is_empty() {
        return Err(ErasureError::EmptyId);
    }
    let id_hash = id_hash(salt, id);
    Ok(ErasureRequest {
        request_id: format!("er-{now_ms}-{}", &id_hash[..12]),
        id_kind: kind.to_string(),
        id_hash,
        salt_check: salt_check(salt),
        requested_at: (now_ms / 1000).clamp(0, i64::from(u32::MAX)) as u32,
        requested_ms: now_ms,
    })
}

/// What `shoplens forget` did.
#[derive(Debug, Clone)]
pub struct ForgetReport {
    /// The request recorded.
    pub request: ErasureRequest,
    /// Whether an instance applied it within the wait.
    pub applied: bool,
}

impl ForgetReport {
    /// What to tell the operator.
    pub fn describe(&self, database: &str) -> String {
        let r = &self.request;
        let recorded = format!(
            "erasure request {} recorded ({}, hash {})",
            r.request_id, r.id_kind, r.id_hash
        );
        if self.applied {
            format!(
                "{recorded}\napplied: SELECT * FROM {database}.erasure_audit WHERE request_id = '{}'",
                r.request_id
            )
        } else {
            format!(
                "{recorded}\nnot applied yet: every instance applies it at its next start or poll"
            )
        }
    }
}

/// The statements that count and delete `subject`'s rows on a current
/// server, with the salt and hash written in (`forget --print-sql`).
pub fn statements(
    settings: &crate::Settings,
    subject: &Subject,
) -> Result<Vec<String>, ErasureError> {
    let request = request_for(subject, &settings.erasure.salt, 0)?;
    let salt = &settings.erasure.salt;
    let mut out = Vec::new();
    for (table, columns) in exporter::clickhouse::PERSONAL_TABLES {
        let (count, delete) =
            exporter::clickhouse::erasure_statements(&settings.clickhouse, table, columns, true);
        for sql in [count, delete] {
            out.push(exporter::clickhouse::with_literals(
                &sql,
                salt,
                &request.id_hash,
            ));
        }
    }
    Ok(out)
}

/// What `shoplens forget` was told: one id, or `--apply-pending`.
#[derive(Debug, Clone, Default)]
pub struct Who {
    /// `--anonymous-id`.
    pub anonymous_id: Option<String>,
    /// `--user-id`.
    pub user_id: Option<String>,
    /// `--apply-pending`.
    pub apply_pending: bool,
}

/// `shoplens forget`: records a request and waits up to `wait` for it to be
/// applied, or prints its statements (`print_sql`), or applies the pending
/// ones. Returns the lines to print.
pub async fn command(
    settings: &crate::Settings,
    who: Who,
    wait: Duration,
    print_sql: bool,
) -> Result<Vec<String>, ErasureError> {
    if who.apply_pending {
        return apply_pending(settings).await;
    }
    let subject = match (who.anonymous_id, who.user_id) {
        (Some(id), _) => Subject::AnonymousId(id),
        (None, Some(id)) => Subject::UserId(id),
        (None, None) => return Err(ErasureError::EmptyId),
    };
    if print_sql {
        return Ok(vec![statements(settings, &subject)?.join(";\n\n")]);
    }
    let report = forget(settings, &subject, wait).await?;
    Ok(vec![report.describe(&settings.clickhouse.database)])
}

/// Deletes the rows of every request without an audit row and audits it
/// (`forget --apply-pending`, as an administrator, where the pipeline's user
/// may not delete). Returns a line per request applied.
pub async fn apply_pending(settings: &crate::Settings) -> Result<Vec<String>, ErasureError> {
    let store = ErasureStore::new(&settings.clickhouse);
    let audited: BTreeSet<String> = store.audited().await?.into_iter().collect();
    let mut check = Forgotten::new(&settings.erasure.salt);
    let mut lines = Vec::new();
    for r in store.requests().await? {
        check.add(&r)?;
        if audited.contains(&r.request_id) {
            continue;
        }
        let instance = "shoplens forget --apply-pending";
        let deleted = (store.apply(&r, &settings.erasure.salt, instance, 0)).await?;
        lines.push(format!(
            "{}: deleted sessions {}, carts {}, customers {}, orders {}",
            r.request_id, deleted[0], deleted[1], deleted[2], deleted[3]
        ));
    }
    if lines.is_empty() {
        lines.push("every request is applied".into());
    }
    Ok(lines)
}

/// Records a request to forget `subject` and waits up to `wait` for a
/// running pipeline to apply it (its audit row). A request recorded while
/// no pipeline runs is applied by the next one to start.
pub async fn forget(
    settings: &crate::Settings,
    subject: &Subject,
    wait: Duration,
) -> Result<ForgetReport, ErasureError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let request = request_for(subject, &settings.erasure.salt, now_ms)?;
    let store = ErasureStore::new(&settings.clickhouse);
    store.record(&request).await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if store.audited().await?.contains(&request.request_id) {
            return Ok(ForgetReport {
                request,
                applied: true,
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(ForgetReport {
                request,
                applied: false,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_of_salt_then_id_in_upper_hex() {
        // sha256("abc"), the FIPS 180-2 example.
        assert_eq!(
            id_hash("a", "bc"),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
    }

    #[test]
    fn a_request_keeps_the_hash_and_never_the_id() {
        let r = request_for(
            &Subject::UserId("alice@example.com".into()),
            "pepper",
            1_000,
        )
        .unwrap();
        assert_eq!(r.id_kind, "user_id");
        assert!(!format!("{r:?}").contains("alice"));
        let mut set = Forgotten::new("pepper");
        set.add(&r).unwrap();
        assert!(set.covers("alice@example.com"));
        assert!(!set.covers("bob@example.com"));
        assert!(!set.covers(""));
    }

    #[test]
    fn requests_of_another_salt_or_without_one_are_refused() {
        let r = request_for(&Subject::AnonymousId("v1".into()), "pepper", 1_000).unwrap();
        let err = Forgotten::new("salt").add(&r).unwrap_err();
        assert!(err.to_string().contains("ERASURE__SALT"), "{err}");
        assert!(matches!(
            Forgotten::new("").add(&r),
            Err(ErasureError::NoSalt)
        ));
        let none = request_for(&Subject::AnonymousId("v1".into()), "", 1_000);
        assert!(matches!(none, Err(ErasureError::NoSalt)));
        let empty = request_for(&Subject::AnonymousId(String::new()), "pepper", 1_000);
        assert!(matches!(empty, Err(ErasureError::EmptyId)));
    }
}
