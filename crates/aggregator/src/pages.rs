//! Page windows: views, entrances, exits and sessions per window and path.
//!
//! Exits are known only when a session closes, so a page window is
//! re-emitted (with a higher version) while sessions whose exit page lies
//! in it are still open. Each open session owns what it did to the page
//! windows ([`VisitPages`]).

use crate::hash::{Map, Set};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::rows::PageRow;
use contract::time::window_start;

/// The label that collects what exceeds a per-window cardinality cap.
pub const OTHER: &str = "(other)";

#[derive(Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct PageAcc {
    page_views: u64,
    entrances: u64,
    exits: u64,
    sessions: u64,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct PageWindow {
    /// Paths are shared (`Arc<str>`) by the window, its dirty set and the
    /// visits, so a page view allocates no path copies. Hash tables (a page
    /// view looks a path up twice; a B-tree of a thousand paths compared
    /// strings some twenty times a lookup): rows are sorted when they leave.
    /// Checkpoints hold a map and a sequence either way.
    paths: Map<Arc<str>, PageAcc>,
    dirty: Set<Arc<str>>,
    /// Open sessions whose current exit page lies in this window.
    pending_exits: u64,
}

type PageKey = (i64, i32);

/// The (window, path) pairs a visit has viewed: held in place while there
/// is one (a visit that bounces sees one page: no allocation), then a
/// short list (most visits see a few pages; a one-element hash set costs
/// 128 bytes of table), then a hash set past [`SeenPages::FEW`], so a long
/// visit stays O(1) per page view. Serialized as a sequence either way, as
/// the hash set would be, so the checkpoint format does not depend on the
/// form.
///
/// A million of these are held at once, so every form is kept small: the
/// list grows 2, 4, 8, 16 (a `Vec` would reserve 4 entries, 96 bytes, on
/// its first push), and the rare set is boxed, which keeps the enum at 32
/// bytes instead of 56.
#[derive(Default)]
enum SeenPages {
    #[default]
    None,
    One((i64, Arc<str>)),
    Few(Vec<(i64, Arc<str>)>),
    #[allow(clippy::box_collection)]
    Many(Box<Set<(i64, Arc<str>)>>),
}

impl SeenPages {
    const FEW: usize = 16;

    /// Whether `page` was seen.
    fn contains(&self, page: &(i64, Arc<str>)) -> bool {
        match self {
            SeenPages::None => false,
            SeenPages::One(first) => first == page,
            SeenPages::Few(v) => v.contains(page),
            SeenPages::Many(set) => set.contains(page),
        }
    }

    /// The pages, in the order seen (a hash set's order past `FEW`).
    fn iter(&self) -> impl Iterator<Item = &(i64, Arc<str>)> + '_ {
        let (one, few, many) = match self {
            SeenPages::None => (None, &[][..], None),
            SeenPages::One(page) => (Some(page), &[][..], None),
            SeenPages::Few(v) => (None, &v[..], None),
            SeenPages::Many(set) => (None, &[][..], Some(set.iter())),
        };
        one.into_iter().chain(few).chain(many.into_iter().flatten())
    }

    /// Adds `page`; whether it was new.
    fn insert(&mut self, page: (i64, Arc<str>)) -> bool {
        match self {
            SeenPages::None => {
                *self = SeenPages::One(page);
                true
            }
            SeenPages::One(first) if *first == page => false,
            SeenPages::One(first) => {
                *self = SeenPages::Few(vec![first.clone(), page]);
                true
            }
            SeenPages::Few(v) if v.contains(&page) => false,
            SeenPages::Few(v) if v.len() < Self::FEW => {
                if v.len() == v.capacity() {
                    v.reserve_exact(v.len().max(1));
                }
                v.push(page);
                true
            }
            SeenPages::Few(v) => {
                let mut set: Set<(i64, Arc<str>)> = v.drain(..).collect();
                set.insert(page);
                *self = SeenPages::Many(Box::new(set));
                true
            }
            SeenPages::Many(set) => set.insert(page),
        }
    }
}

impl serde::Serialize for SeenPages {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for SeenPages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pages = Vec::<(i64, Arc<str>)>::deserialize(d)?;
        let mut seen = SeenPages::default();
        for page in pages {
            seen.insert(page);
        }
        Ok(seen)
    }
}

/// What one open session has done to the page windows: the pages it saw
/// (each counts one session per window and path) and its exit page so far.
/// The open session owns it (it lives and dies with the session, so it
/// needs no table of its own); checkpoints write it here, in [`Pages`].
///
/// The pages seen are the exit's and `others`, which is boxed and made
/// only when a second page is viewed: half the visits bounce, and a
/// visit of one page keeps 40 bytes (64 when the exit sat beside a list).
/// Checkpoints write `seen` (in the order seen) and `exit` as before.
#[derive(Default)]
pub(crate) struct VisitPages {
    exit: Option<(PageKey, Arc<str>)>,
    /// The pages seen besides the exit's (it may be among them too).
    others: Option<Box<SeenPages>>,
}

/// The (window, path) of `exit`, as the pages seen hold it.
fn seen_as(exit: &(PageKey, Arc<str>)) -> (i64, Arc<str>) {
    (exit.0 .0, exit.1.clone())
}

impl VisitPages {
    /// Records a page view of `path` in window `w`; whether the visit had
    /// not seen that (window, path) before.
    fn view(&mut self, w: PageKey, path: Arc<str>) -> bool {
        let page = (w.0, path);
        let Some(exit) = self.exit.replace((w, page.1.clone())) else {
            return true;
        };
        let was_exit = exit.0 .0 == page.0 && exit.1 == page.1;
        if was_exit {
            return false;
        }
        let others = self.others.get_or_insert_with(Box::default);
        let new = !others.contains(&page);
        // The page left joins the others (its path moved, not cloned).
        let (left_w, left_path) = exit;
        others.insert((left_w.0, left_path));
        new
    }

    /// The pages seen, in the order first seen: the others, then the exit's
    /// unless it is among them (an exit not among them was never left, so
    /// it is the latest page first seen).
    fn seen(&self) -> impl Iterator<Item = (i64, Arc<str>)> + '_ {
        let others = self.others.as_deref();
        let listed = others.into_iter().flat_map(|o| o.iter().cloned());
        let exit = self.exit.as_ref().map(seen_as);
        let exit = exit.filter(|e| !others.is_some_and(|o| o.contains(e)));
        listed.chain(exit)
    }
}

/// [`VisitPages`] as checkpoints hold it.
#[derive(serde::Deserialize)]
struct VisitRepr {
    seen: Vec<(i64, Arc<str>)>,
    exit: Option<(PageKey, Arc<str>)>,
}

impl serde::Serialize for VisitPages {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Seen<'a>(&'a VisitPages);
        impl serde::Serialize for Seen<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // Counted first: postcard writes a sequence's length ahead.
                let n = self.0.seen().count();
                let mut seq = serde::Serializer::serialize_seq(s, Some(n))?;
                for page in self.0.seen() {
                    serde::ser::SerializeSeq::serialize_element(&mut seq, &page)?;
                }
                serde::ser::SerializeSeq::end(seq)
            }
        }
        let mut st = serializer.serialize_struct("VisitPages", 2)?;
        st.serialize_field("seen", &Seen(self))?;
        st.serialize_field("exit", &self.exit)?;
        st.end()
    }
}

impl<'de> serde::Deserialize<'de> for VisitPages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut r = VisitRepr::deserialize(d)?;
        // An exit seen last was never left: it stands for itself. One
        // seen earlier stays in its place among the others.
        if r.seen
            .last()
            .is_some_and(|p| Some(p) == r.exit.as_ref().map(seen_as).as_ref())
        {
            r.seen.pop();
        }
        let mut others = SeenPages::default();
        for page in r.seen {
            others.insert(page);
        }
        let others = (!matches!(others, SeenPages::None)).then(|| Box::new(others));
        Ok(VisitPages {
            exit: r.exit,
            others,
        })
    }
}

/// Visits by visitor id, as checkpoints hold them.
pub(crate) type Visits = Map<Arc<str>, Box<VisitPages>>;

/// Page views, entrances, exits and sessions per window and path.
///
/// Checkpoints hold the open sessions' visits in here, keyed by visitor:
/// written through [`Pages::layout`], read into `restored` until
/// [`crate::Aggregator::restore`] gives them back to their sessions.
#[derive(serde::Deserialize)]
#[serde(from = "PagesRepr")]
pub(crate) struct Pages {
    window_ms: i64,
    max_paths: usize,
    windows: BTreeMap<PageKey, PageWindow>,
    /// Visits read from a checkpoint, until they rejoin their sessions.
    restored: Visits,
}

/// The checkpoint layout of [`Pages`] (field order is the format).
#[derive(serde::Deserialize)]
struct PagesRepr {
    window_ms: i64,
    max_paths: usize,
    windows: BTreeMap<PageKey, PageWindow>,
    visits: Visits,
}

impl From<PagesRepr> for Pages {
    fn from(r: PagesRepr) -> Self {
        Pages {
            window_ms: r.window_ms,
            max_paths: r.max_paths,
            windows: r.windows,
            restored: r.visits,
        }
    }
}

/// [`PagesRepr`], borrowed to write it; `visits` serializes as the map.
#[derive(serde::Serialize)]
pub(crate) struct PagesRef<'a, V> {
    window_ms: i64,
    max_paths: usize,
    windows: &'a BTreeMap<PageKey, PageWindow>,
    visits: V,
}

impl Pages {
    pub(crate) fn new(window_ms: i64, max_paths: usize) -> Self {
        Pages {
            window_ms,
            max_paths: max_paths.max(1),
            windows: BTreeMap::new(),
            restored: Map::default(),
        }
    }

    /// The checkpoint layout, with the open sessions' `visits`.
    pub(crate) fn layout<V: serde::Serialize>(&self, visits: V) -> PagesRef<'_, V> {
        PagesRef {
            window_ms: self.window_ms,
            max_paths: self.max_paths,
            windows: &self.windows,
            visits,
        }
    }

    /// The visits a checkpoint held, for their sessions to take back.
    pub(crate) fn take_restored(&mut self) -> Visits {
        std::mem::take(&mut self.restored)
    }

    /// The window's shared copy of `path`, or of `(other)` once the window
    /// holds `max_paths` distinct paths.
    fn path_in(&mut self, w: PageKey, path: &str) -> Arc<str> {
        let win = self.windows.entry(w).or_default();
        let name = if win.paths.contains_key(path) || win.paths.len() < self.max_paths {
            path
        } else {
            OTHER
        };
        match win.paths.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => Arc::from(name),
        }
    }

    /// A page view of the open session whose visit state is `visit`.
    pub(crate) fn page_view(
        &mut self,
        visit: &mut VisitPages,
        ts: i64,
        path: &str,
        partition: i32,
    ) {
        let w = (window_start(ts, self.window_ms), partition);
        let path = self.path_in(w, path);
        let old_exit = visit.exit.as_ref().map(|(ow, _)| *ow);
        let entrance = old_exit.is_none();
        let first_in_window = visit.view(w, path.clone());
        if let Some(ow) = old_exit {
            if let Some(win) = self.windows.get_mut(&ow) {
                win.pending_exits -= 1;
            }
        }
        let win = self.windows.entry(w).or_default();
        win.pending_exits += 1;
        let acc = win.paths.entry(path.clone()).or_default();
        acc.page_views += 1;
        acc.entrances += u64::from(entrance);
        acc.sessions += u64::from(first_in_window);
        win.dirty.insert(path);
    }

    /// The session whose visit state is `visit` closed: its last page view
    /// is an exit.
    pub(crate) fn close(&mut self, visit: VisitPages) {
        if let Some((w, path)) = visit.exit {
            if let Some(win) = self.windows.get_mut(&w) {
                win.pending_exits -= 1;
                win.paths.entry(path.clone()).or_default().exits += 1;
                win.dirty.insert(path);
            }
        }
    }

    /// The session whose visit state is `visit` was dropped (an erasure):
    /// its exit is not pending any more, and is not counted.
    pub(crate) fn forget(&mut self, visit: VisitPages) {
        if let Some((w, _)) = visit.exit {
            if let Some(win) = self.windows.get_mut(&w) {
                win.pending_exits -= 1;
            }
        }
    }

    /// Rows of windows the watermark passed that changed since last emitted.
    pub(crate) fn flush(&mut self, watermark_ms: i64) -> Vec<PageRow> {
        let mut rows = Vec::new();
        let window_ms = self.window_ms;
        for ((w, partition), win) in self.windows.iter_mut() {
            if w + window_ms > watermark_ms {
                break;
            }
            let mut dirty: Vec<Arc<str>> = win.dirty.drain().collect();
            dirty.sort_unstable();
            for path in dirty {
                let a = win.paths[&path];
                rows.push(PageRow {
                    window_start_ms: *w,
                    path: path.to_string(),
                    partition: *partition,
                    page_views: a.page_views,
                    entrances: a.entrances,
                    exits: a.exits,
                    sessions: a.sessions,
                    version: a.page_views + a.entrances + a.exits + a.sessions,
                });
            }
        }
        self.windows
            .retain(|(w, _), win| w + window_ms > watermark_ms || win.pending_exits > 0);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_visit_holds_only_the_pages_it_saw() {
        assert_size_at_most!(SeenPages, 32);
        let mut seen = SeenPages::default();
        let mut capacities = Vec::new();
        for i in 0..SeenPages::FEW as i64 {
            seen.insert((i, Arc::from("/")));
            match &seen {
                SeenPages::One(_) => capacities.push(0),
                SeenPages::Few(v) => capacities.push(v.capacity()),
                _ => {}
            }
        }
        assert_eq!(&capacities[..5], &[0, 2, 4, 4, 8], "the first in place");
        assert_eq!(capacities.last(), Some(&SeenPages::FEW));
    }

    /// The layout checkpoints had when a visit held its pages and its exit
    /// side by side.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct EarlierVisit {
        seen: Vec<(i64, Arc<str>)>,
        exit: Option<(PageKey, Arc<str>)>,
    }

    #[test]
    fn a_visit_counts_pages_as_a_set_with_its_exit_did_and_keeps_the_layout() {
        assert_size_at_most!(VisitPages, 40);
        // Page views (window, path): revisits, a page left and seen again,
        // the same path in another window, and past `FEW` distinct pages.
        let long: Vec<(i64, usize)> = (0..40usize).map(|i| (i as i64 / 10, i % 23)).collect();
        let visits: [Vec<(i64, usize)>; 5] = [
            vec![(0, 1)],
            vec![(0, 1), (0, 1), (0, 2)],
            vec![(0, 1), (0, 2), (0, 1)],
            vec![(0, 1), (0, 2), (1, 1), (0, 2), (0, 3)],
            long,
        ];
        for views in visits {
            let mut visit = VisitPages::default();
            let mut seen: Vec<(i64, Arc<str>)> = Vec::new();
            for &(w, p) in &views {
                let page = (w, Arc::<str>::from(format!("/p{p}").as_str()));
                let new = !seen.contains(&page);
                if new {
                    seen.push(page.clone());
                }
                assert_eq!(visit.view((w, 3), page.1.clone()), new, "{views:?}");
            }
            let last = views.last().expect("a view");
            let exit = Some((
                (last.0, 3),
                Arc::<str>::from(format!("/p{}", last.1).as_str()),
            ));
            assert!(visit.exit == exit);
            let mut got: Vec<_> = visit.seen().collect();
            if seen.len() <= SeenPages::FEW {
                // The bytes the earlier layout wrote, and back again.
                let earlier = EarlierVisit {
                    seen: seen.clone(),
                    exit,
                };
                let bytes = postcard::to_stdvec(&visit).expect("encodes");
                assert_eq!(bytes, postcard::to_stdvec(&earlier).expect("encodes"));
                let back: VisitPages = postcard::from_bytes(&bytes).expect("decodes");
                assert_eq!(postcard::to_stdvec(&back).expect("encodes"), bytes);
            }
            got.sort();
            seen.sort();
            assert_eq!(got, seen, "{views:?}");
        }
    }

    #[test]
    fn seen_pages_answer_as_a_set_would_short_or_long_and_keep_the_set_format() {
        let mut seen = SeenPages::default();
        let mut set = std::collections::HashSet::new();
        for i in 0..100i64 {
            let page = (
                i % 40 / 2,
                Arc::<str>::from(format!("/p{}", i % 40).as_str()),
            );
            assert_eq!(seen.insert(page.clone()), set.insert(page), "page view {i}");
        }
        assert!(matches!(seen, SeenPages::Many(_)), "past FEW: a hash set");
        // One page: the bytes of a one-element hash set, as checkpoints had.
        let one = (7i64, Arc::<str>::from("/cart"));
        let mut few = SeenPages::default();
        few.insert(one.clone());
        let old: std::collections::HashSet<(i64, Arc<str>)> = [one.clone()].into_iter().collect();
        let bytes = postcard::to_stdvec(&few).expect("serializes");
        assert_eq!(bytes, postcard::to_stdvec(&old).expect("serializes"));
        let back: SeenPages = postcard::from_bytes(&bytes).expect("reads the old format");
        assert!(matches!(back, SeenPages::One(ref p) if *p == one));
        // None: the bytes of an empty set.
        let empty: std::collections::HashSet<(i64, Arc<str>)> = Default::default();
        let none = postcard::to_stdvec(&SeenPages::default()).expect("serializes");
        assert_eq!(none, postcard::to_stdvec(&empty).expect("serializes"));
    }
}
