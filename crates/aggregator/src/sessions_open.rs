//! One open session, kept compact: a million of them are held at once.
//!
//! The row a session becomes is built when it closes. While it is open its
//! strings are shared: the campaign fields, paths and experiment through
//! the sessionizer's [`Interner`] (most sessions come from a few campaigns
//! and land on a few pages). The visitor id and the storefront's session
//! id are [`SmallId`]s, with no allocation of their own for a UUID or a
//! short id, and a session id derived from the visitor and the start is
//! not stored at all. So opening a session makes a handful of
//! allocations, and an event of an open session makes none.
//!
//! Checkpoints write an open session as [`OpenRepr`], whose `row` is the
//! [`SessionRow`] it would close as now; its page state is written with the
//! page windows ([`crate::pages::Pages`]).

use std::sync::Arc;

use contract::{Device, Event, EventKind};

use crate::channel::Channel;
use crate::intern::{Group, Interner};
use crate::offsets::HeldOffsets;
use crate::pages::VisitPages;
use crate::rows::SessionRow;
use crate::small_id::SmallId;
use crate::stage_times::StageReached;
use crate::{Position, Source};

use super::marks::{Fact, Holds, Marks};

/// An open session (192 bytes, an allocator size class).
#[derive(serde::Deserialize)]
#[serde(from = "OpenRepr")]
pub(super) struct Open {
    /// The visitor, also the key of its deadline entry ([`SmallId`]: no
    /// allocation for a UUID or a short id).
    pub(super) visitor: SmallId,
    /// The row's session id when it is not `<visitor>:<start_ms>`.
    row_id: Option<SmallId>,
    /// The storefront's session id, when it is not the row's (one that came
    /// only after the session began under a derived id).
    storefront_id_other: Option<Box<SmallId>>,
    user_id: Option<Box<str>>,
    /// Paths of the first and last page views, empty before one.
    entry_path: Arc<str>,
    exit_path: Arc<str>,
    /// Source, medium and campaign name, shared as one.
    origin: Group<3>,
    /// Experiment id and variant of the first event that had one, empty
    /// before; shared as one.
    experiment: Group<2>,
    pub(super) start_ms: i64,
    revenue_minor: i64,
    /// The lowest offset of each source among this session's events (the
    /// first in place, its stream in `marks`).
    held: Holds,
    /// The last event's time, as milliseconds after `start_ms` (less than
    /// `session_max_ms`, which is kept within `u32`).
    end_in: u32,
    page_views: u32,
    events: u32,
    /// Orders and signups, each saturating at 65,535 in one session (a
    /// session lasts at most `session_max_ms`).
    orders: u16,
    signups: u16,
    stages_any: u32,
    /// `close_at` of this session's one live entry in the deadline heap,
    /// as milliseconds after `start_ms` (at most `session_max_ms`, which is
    /// kept within `u32`).
    queued_in: u32,
    partition: i32,
    pub(super) channel: Channel,
    device: Device,
    stage_reached: u8,
    /// Yes-or-no facts (see [`Fact`]; the storefront's session id is
    /// `row_id` when [`Fact::StorefrontIdIsRowId`]), and the stream of the
    /// first held offset.
    marks: Marks,
    /// What the session did to the page windows, from its first page view.
    pub(super) visit: Option<Box<VisitPages>>,
}

/// The checkpoint layout of an open session (field order is the format).
#[derive(serde::Deserialize)]
pub(super) struct OpenRepr {
    row: SessionRow,
    storefront_id: Option<String>,
    engaged: bool,
    held: Vec<(Source, i64)>,
    queued_at: i64,
}

/// [`OpenRepr`], from an [`Open`] to write it.
#[derive(serde::Serialize)]
struct OpenRef<'a> {
    row: SessionRow,
    storefront_id: Option<&'a SmallId>,
    engaged: bool,
    held: HoldsRef<'a>,
    queued_at: i64,
}

/// An open session's holds, written as the sequence they were.
struct HoldsRef<'a>(&'a Open);

impl serde::Serialize for HoldsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.holds())
    }
}

impl From<OpenRepr> for Open {
    fn from(r: OpenRepr) -> Self {
        let row = r.row;
        let visitor = SmallId::new(&row.anonymous_id);
        let derived = derived_id(&visitor, row.start_ms);
        let same = r.storefront_id.as_deref() == Some(row.session_id.as_str());
        let mut marks = Marks::default();
        marks.set(Fact::StorefrontIdIsRowId, same);
        marks.set(Fact::Converted, row.converted);
        marks.set(Fact::NewVisitor, row.new_visitor);
        marks.set(Fact::Referral, row.referral);
        marks.set(Fact::Engaged, r.engaged);
        let held = Holds::restored(&mut marks, row.partition, r.held);
        Open {
            row_id: (row.session_id != derived || same).then(|| SmallId::new(&row.session_id)),
            storefront_id_other: r.storefront_id.filter(|_| !same).map(boxed_id),
            user_id: (!row.user_id.is_empty()).then(|| row.user_id.into()),
            entry_path: row.entry_path,
            exit_path: row.exit_path,
            origin: Arc::new([row.source, row.medium, row.campaign]),
            experiment: Arc::new([row.experiment_id, row.variant]),
            visitor,
            start_ms: row.start_ms,
            end_in: offset(row.start_ms, row.end_ms),
            revenue_minor: row.revenue_minor,
            page_views: row.page_views,
            events: row.events,
            orders: saturate(row.orders),
            signups: saturate(row.signups),
            stages_any: row.stages_any,
            queued_in: 0,
            partition: row.partition,
            channel: row.channel,
            device: row.device,
            stage_reached: row.stage_reached,
            marks,
            held,
            visit: None,
        }
        .queued(r.queued_at)
    }
}

impl serde::Serialize for Open {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        OpenRef {
            row: self.row(false),
            storefront_id: self.storefront_id(),
            engaged: self.has(Fact::Engaged),
            held: HoldsRef(self),
            queued_at: self.queued_at(),
        }
        .serialize(serializer)
    }
}

/// The session id of a session the storefront gave none for.
fn derived_id(visitor: &SmallId, start_ms: i64) -> String {
    format!("{visitor}:{start_ms}")
}

/// A storefront session id that came after its session began (rare): one
/// pointer in the session.
fn boxed_id(id: impl AsRef<str>) -> Box<SmallId> {
    Box::new(SmallId::new(id.as_ref()))
}

/// A count as an open session keeps it, at most `u16::MAX`.
fn saturate(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// `at` as milliseconds after `start_ms`, within `u32` (an event is never
/// before its session's start, nor past its length cap).
fn offset(start_ms: i64, at: i64) -> u32 {
    u32::try_from(at.saturating_sub(start_ms).max(0)).unwrap_or(u32::MAX)
}

impl Open {
    /// A session opened by `e` (its first event) at `pos`, for `visitor`
    /// (`e`'s, shared), in `channel`; strings shared through `strings`.
    pub(super) fn start(
        e: &Event,
        pos: Position,
        visitor: SmallId,
        channel: Channel,
        strings: &mut Interner,
    ) -> Open {
        let campaign = e.campaign();
        let referrer = e.page.as_ref().and_then(|p| p.referrer_host.as_deref());
        let source = campaign.source.as_deref().or(referrer).unwrap_or_default();
        let mut marks = Marks::default();
        marks.set(Fact::StorefrontIdIsRowId, e.session_id.is_some());
        Open {
            visitor,
            row_id: e.session_id.as_deref().map(SmallId::new),
            storefront_id_other: None,
            user_id: None,
            entry_path: strings.get(""),
            exit_path: strings.get(""),
            origin: strings.origin([
                source,
                campaign.medium.as_deref().unwrap_or_default(),
                campaign.name.as_deref().unwrap_or_default(),
            ]),
            experiment: strings.experiment(["", ""]),
            start_ms: e.timestamp_ms,
            end_in: 0,
            revenue_minor: 0,
            page_views: 0,
            events: 0,
            orders: 0,
            signups: 0,
            stages_any: 0,
            queued_in: 0,
            partition: pos.source.partition,
            channel,
            device: e.device,
            stage_reached: 0,
            marks,
            held: Holds::default(),
            visit: None,
        }
    }

    /// The storefront's session id, if any event carried one.
    pub(super) fn storefront_id(&self) -> Option<&SmallId> {
        if self.has(Fact::StorefrontIdIsRowId) {
            self.row_id.as_ref()
        } else {
            self.storefront_id_other.as_deref()
        }
    }

    /// Whether its storefront session id is `id`.
    pub(super) fn storefront_id_is(&self, id: &str) -> bool {
        self.storefront_id().is_some_and(|s| s.is(id))
    }

    /// The last user id seen, if any.
    pub(super) fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The time of its last event.
    pub(super) fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.end_in)
    }

    pub(super) fn close_at(&self, gap: i64, max: i64) -> i64 {
        (self.end_ms() + gap + 1).min(self.start_ms + max)
    }

    /// When this session's live deadline entry is due.
    pub(super) fn queued_at(&self) -> i64 {
        self.start_ms + i64::from(self.queued_in)
    }

    /// Records `at` as its live deadline (`at` lies within `session_max_ms`
    /// of the start, which fits `u32`); returns what was recorded.
    pub(super) fn queue(&mut self, at: i64) -> i64 {
        self.queued_in = offset(self.start_ms, at);
        self.queued_at()
    }

    fn queued(mut self, at: i64) -> Self {
        self.queue(at);
        self
    }

    /// Its id (as its row will have it), experiment and variant.
    pub(super) fn key(&self) -> crate::aggregate::SessionKey {
        crate::aggregate::SessionKey {
            session_id: match &self.row_id {
                Some(id) => id.to_string(),
                None => derived_id(&self.visitor, self.start_ms),
            },
            experiment_id: self.experiment[0].to_string(),
            variant: self.experiment[1].to_string(),
        }
    }

    /// The row this session closes as, `bounced` or not: shared strings
    /// are shared with it, not copied.
    pub(super) fn row(&self, bounced: bool) -> SessionRow {
        let session_id = match &self.row_id {
            Some(id) => id.to_string(),
            None => derived_id(&self.visitor, self.start_ms),
        };
        SessionRow {
            session_id,
            anonymous_id: self.visitor.to_arc(),
            user_id: self.user_id.as_deref().unwrap_or_default().to_string(),
            start_ms: self.start_ms,
            end_ms: self.end_ms(),
            page_views: self.page_views,
            events: self.events,
            entry_path: self.entry_path.clone(),
            exit_path: self.exit_path.clone(),
            channel: self.channel,
            source: self.origin[0].clone(),
            medium: self.origin[1].clone(),
            campaign: self.origin[2].clone(),
            device: self.device,
            experiment_id: self.experiment[0].clone(),
            variant: self.experiment[1].clone(),
            bounced,
            converted: self.has(Fact::Converted),
            new_visitor: self.has(Fact::NewVisitor),
            stage_reached: self.stage_reached,
            stages_any: self.stages_any,
            orders: self.orders.into(),
            revenue_minor: self.revenue_minor,
            signups: self.signups.into(),
            referral: self.has(Fact::Referral),
            partition: self.partition,
        }
    }

    /// Under 2 page views, no engagement event and shorter than
    /// `bounce_ms`.
    pub(super) fn bounced(&self, bounce_ms: i64) -> bool {
        self.page_views < 2 && !self.has(Fact::Engaged) && i64::from(self.end_in) < bounce_ms
    }

    /// What `e` does to the session: its end and count, ids, experiment,
    /// pages, engagement, funnel stages (`stages`), orders and revenue (in
    /// `currency` only), signups and referrals. Strings are shared through
    /// `strings`, and copied only when they change.
    pub(super) fn record(
        &mut self,
        e: &Event,
        server_side: bool,
        stages: &[String],
        currency: &str,
        strings: &mut Interner,
    ) -> Option<StageReached> {
        self.end_in = offset(self.start_ms, e.timestamp_ms);
        self.events += 1;
        if self.storefront_id().is_none() && !server_side {
            self.storefront_id_other = e.session_id.as_deref().map(boxed_id);
        }
        if let Some(u) = &e.user_id {
            if self.user_id.as_deref() != Some(u.as_str()) {
                self.user_id = Some(u.as_str().into());
            }
        }
        if let (true, Some(x)) = (self.experiment[0].is_empty(), &e.experiment) {
            self.experiment = strings.experiment([&x.id, &x.variant]);
        }
        if let (EventKind::PageView, Some(p)) = (&e.kind, &e.page) {
            self.page_views += 1;
            if *self.exit_path != *p.path {
                self.exit_path = strings.get(&p.path);
            }
            if self.entry_path.is_empty() {
                self.entry_path.clone_from(&self.exit_path);
            }
        }
        if e.kind.is_engagement() {
            self.marks.set(Fact::Engaged, true);
        }
        let type_name = e.kind.type_name();
        let mut reached = None;
        if let Some(i) = stages.iter().position(|st| st == type_name) {
            self.stages_any |= 1 << i;
            if i == usize::from(self.stage_reached) {
                self.stage_reached += 1;
                reached = Some(StageReached {
                    // As funnel_1m_final numbers it: `session` is 1.
                    stage: self.stage_reached + 1,
                    start_ms: self.start_ms,
                    elapsed_ms: e.timestamp_ms - self.start_ms,
                    channel: self.channel,
                    partition: self.partition,
                });
            }
        }
        self.count(&e.kind, currency);
        reached
    }

    /// Orders and revenue (in `currency` only), signups and referrals.
    fn count(&mut self, kind: &EventKind, currency: &str) {
        match kind {
            EventKind::OrderPlaced {
                total,
                referral_code,
                ..
            } => {
                self.marks.set(Fact::Converted, true);
                self.orders = self.orders.saturating_add(1);
                if total.currency.as_str() == currency {
                    self.revenue_minor = self.revenue_minor.saturating_add(total.minor);
                }
                if referral_code.is_some() {
                    self.marks.set(Fact::Referral, true);
                }
            }
            EventKind::Signup => self.signups = self.signups.saturating_add(1),
            EventKind::ReferralSent { .. } => self.marks.set(Fact::Referral, true),
            _ => {}
        }
    }

    /// Whether `fact` holds for the session.
    pub(super) fn has(&self, fact: Fact) -> bool {
        self.marks.has(fact)
    }

    /// Records whether it is the visitor's first session.
    pub(super) fn set_new_visitor(&mut self, new: bool) {
        self.marks.set(Fact::NewVisitor, new);
    }

    /// The offsets it holds: the lowest of each source among its events.
    pub(super) fn holds(&self) -> impl Iterator<Item = (Source, i64)> + '_ {
        self.held.iter(self.marks, self.partition)
    }

    /// The session holds the lowest offset of each source among its events.
    pub(super) fn hold(&mut self, pos: Position, held: &mut HeldOffsets) {
        (self.held).hold(&mut self.marks, self.partition, pos, held);
    }

    /// Releases every offset it holds.
    pub(super) fn release_holds(&mut self, held: &mut HeldOffsets) {
        (self.held).release_all(&mut self.marks, self.partition, held);
    }
}
