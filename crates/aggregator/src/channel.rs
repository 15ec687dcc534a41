//! Default channel grouping: ordered rules over campaign, click ids and referrer.
//!
//! Follows GA4's default channel group, reduced to the eight channels of the
//! spec, with built-in lists of search engines and social networks that
//! include the Russian ones. A user's own rules (config) are tried first.

use serde::Deserialize;

use contract::{Campaign, Page};

/// The channel a session is attributed to. A bounded label set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
pub enum Channel {
    /// Paid medium (cpc, ppc, paid*) or a click id, from a search engine.
    #[serde(rename = "Paid Search")]
    PaidSearch,
    /// A search engine, not paid.
    #[serde(rename = "Organic Search")]
    OrganicSearch,
    /// Paid medium from a social network.
    #[serde(rename = "Paid Social")]
    PaidSocial,
    /// A social network, not paid.
    #[serde(rename = "Organic Social")]
    OrganicSocial,
    /// Medium email, or a webmail referrer.
    Email,
    /// Another site's link.
    Referral,
    /// No source, medium or foreign referrer.
    Direct,
    /// Anything else (unknown paid sources, odd mediums).
    Other,
}

impl Channel {
    /// Every channel, for pre-registering metric series.
    pub const ALL: [Channel; 8] = [
        Channel::PaidSearch,
        Channel::OrganicSearch,
        Channel::PaidSocial,
        Channel::OrganicSocial,
        Channel::Email,
        Channel::Referral,
        Channel::Direct,
        Channel::Other,
    ];

    /// The stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::PaidSearch => "Paid Search",
            Channel::OrganicSearch => "Organic Search",
            Channel::PaidSocial => "Paid Social",
            Channel::OrganicSocial => "Organic Social",
            Channel::Email => "Email",
            Channel::Referral => "Referral",
            Channel::Direct => "Direct",
            Channel::Other => "Other",
        }
    }

    /// The channel of a stable label.
    pub fn parse(label: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == label)
    }
}

/// One user rule: every given condition must match (case-insensitive).
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelRule {
    /// The channel assigned when the rule matches.
    pub channel: Option<Channel>,
    /// `utm_source` equals this.
    pub source: Option<String>,
    /// `utm_medium` equals this.
    pub medium: Option<String>,
    /// The referrer host is this domain or a subdomain of it.
    pub referrer_domain: Option<String>,
}

/// Rules and lists that drive classification.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelRules {
    /// The store's own domains: referrers from them are not referrals.
    pub own_domains: Vec<String>,
    /// Extra search engine domains or source names.
    pub search_engines: Vec<String>,
    /// Extra social network domains or source names.
    pub social_networks: Vec<String>,
    /// User rules, tried in order before the built-in ones.
    pub rules: Vec<ChannelRule>,
}

/// Search engines: domains (matched with subdomains) and source names.
const SEARCH: &[&str] = &[
    "google",
    "bing",
    "yahoo",
    "duckduckgo",
    "baidu",
    "yandex",
    "ya.ru",
    "go.mail.ru",
    "rambler",
    "ecosia",
    "naver",
    "seznam",
    "qwant",
    "startpage",
    "ask.com",
    "sogou",
    "search.brave.com",
];
/// Social networks: domains and source names, including VK, OK, Telegram and Dzen.
const SOCIAL: &[&str] = &[
    "facebook",
    "fb",
    "instagram",
    "ig",
    "twitter",
    "t.co",
    "x.com",
    "linkedin",
    "lnkd.in",
    "pinterest",
    "reddit",
    "tiktok",
    "youtube",
    "youtu.be",
    "vk",
    "vk.com",
    "vkontakte",
    "ok.ru",
    "odnoklassniki",
    "telegram",
    "t.me",
    "tg",
    "dzen",
    "dzen.ru",
    "zen.yandex.ru",
    "whatsapp",
    "snapchat",
    "threads.net",
    "my.mail.ru",
];
/// Webmail hosts whose links count as email.
const WEBMAIL: &[&str] = &[
    "mail.google.com",
    "outlook.live.com",
    "mail.yahoo.com",
    "e.mail.ru",
    "mail.yandex.ru",
    "mail.yandex.com",
];

/// Whether `host` is `domain` or a subdomain of it; a bare name (no dot)
/// matches any label of the host (`google` matches `www.google.co.uk`).
fn host_matches(host: &str, domain: &str) -> bool {
    Host::new(host).matches(domain)
}

/// Labels a host is split into at most, held in place; a host with more is
/// matched by splitting it again (no allocation either way).
const MAX_LABELS: usize = 8;

/// A host split into its labels once, to be matched against the dozens of
/// domains of the built-in lists: splitting it again for each of them was
/// most of the cost of classifying a session.
struct Host<'a> {
    bytes: &'a [u8],
    labels: [&'a [u8]; MAX_LABELS],
    /// Labels held; `None` when the host has more than [`MAX_LABELS`].
    count: Option<usize>,
}

impl<'a> Host<'a> {
    fn new(host: &'a str) -> Self {
        let bytes = host.as_bytes();
        let mut labels = [&bytes[..0]; MAX_LABELS];
        let mut count = Some(0);
        for (i, label) in bytes.split(|&b| b == b'.').enumerate() {
            if i == MAX_LABELS {
                count = None;
                break;
            }
            labels[i] = label;
            count = Some(i + 1);
        }
        Host {
            bytes,
            labels,
            count,
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether the host is `domain` or a subdomain of it, or, for a bare
    /// name, has it as a label; ASCII case ignored, bytes compared (no
    /// slice of a str that could split a character).
    ///
    /// One test serves both kinds: a label never holds a dot, so no label
    /// equals a dotted domain; and a bare name at the host's end is its
    /// last label. So neither kind needs to know which it is.
    fn matches(&self, domain: &str) -> bool {
        let (h, d) = (self.bytes, domain.as_bytes());
        let suffix = h.len() >= d.len()
            && h[h.len() - d.len()..].eq_ignore_ascii_case(d)
            && (h.len() == d.len() || h[h.len() - d.len() - 1] == b'.');
        suffix || self.has_label(d)
    }

    fn has_label(&self, d: &[u8]) -> bool {
        let equal = |label: &[u8]| label.len() == d.len() && label.eq_ignore_ascii_case(d);
        match self.count {
            Some(n) => self.labels[..n].iter().any(|l| equal(l)),
            None => self.bytes.split(|&b| b == b'.').any(equal),
        }
    }
}

fn in_list(host: &Host<'_>, builtin: &[&str], extra: &[String]) -> bool {
    builtin.iter().any(|d| host.matches(d)) || extra.iter().any(|d| host.matches(d))
}

fn is_paid(medium: &str) -> bool {
    matches!(
        medium,
        "cpc" | "ppc" | "cpm" | "cpv" | "cpa" | "retargeting"
    ) || medium.starts_with("paid")
}

impl ChannelRules {
    /// Whether `host` is one of the store's own.
    fn own(&self, host: &str, page_host: &str) -> bool {
        (!page_host.is_empty() && host == page_host)
            || self.own_domains.iter().any(|d| host_matches(host, d))
    }

    /// The channel of a session whose first event had `campaign` and `page`.
    pub fn classify(&self, campaign: &Campaign, page: Option<&Page>) -> Channel {
        let source = campaign.source.as_deref().unwrap_or("");
        let medium = campaign.medium.as_deref().unwrap_or("");
        let referrer = page
            .and_then(|p| p.referrer_host.as_deref())
            .filter(|r| !self.own(r, page.map_or("", |p| p.host.as_str())))
            .unwrap_or("");

        for rule in &self.rules {
            let eq = |want: &Option<String>, have: &str| {
                want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(have))
            };
            let dom = rule
                .referrer_domain
                .as_ref()
                .is_none_or(|d| !referrer.is_empty() && host_matches(referrer, d));
            let any =
                rule.source.is_some() || rule.medium.is_some() || rule.referrer_domain.is_some();
            if any && eq(&rule.source, source) && eq(&rule.medium, medium) && dom {
                if let Some(c) = rule.channel {
                    return c;
                }
            }
        }

        // The origin: utm_source when given, else the referrer host. Each
        // list is searched only when the outcome depends on it.
        let origin = Host::new(if source.is_empty() { referrer } else { source });
        let search = || !origin.is_empty() && in_list(&origin, SEARCH, &self.search_engines);
        let social = || !origin.is_empty() && in_list(&origin, SOCIAL, &self.social_networks);
        let paid = is_paid(medium) || (campaign.click_id && medium.is_empty());

        if paid {
            return if search() {
                Channel::PaidSearch
            } else if social() {
                Channel::PaidSocial
            } else {
                Channel::Other
            };
        }
        if matches!(medium, "email" | "e-mail" | "e_mail" | "newsletter")
            || (!referrer.is_empty() && in_list(&Host::new(referrer), WEBMAIL, &[]))
        {
            return Channel::Email;
        }
        if search() || medium == "organic" {
            return Channel::OrganicSearch;
        }
        if social() || matches!(medium, "social" | "social-network" | "social-media" | "sm") {
            return Channel::OrganicSocial;
        }
        if medium == "referral" || (!referrer.is_empty() && medium.is_empty() && source.is_empty())
        {
            return Channel::Referral;
        }
        if source.is_empty() && medium.is_empty() {
            return Channel::Direct;
        }
        Channel::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(source: &str, medium: &str, click: bool, referrer: &str) -> Channel {
        let rules = ChannelRules {
            own_domains: vec!["shop.example".into()],
            ..Default::default()
        };
        let c = Campaign {
            source: (!source.is_empty()).then(|| source.into()),
            medium: (!medium.is_empty()).then(|| medium.into()),
            name: None,
            click_id: click,
        };
        let page = Page {
            path: "/".into(),
            host: "www.shop.example".into(),
            referrer_host: (!referrer.is_empty()).then(|| referrer.into()),
        };
        rules.classify(&c, Some(&page))
    }

    #[test]
    fn ordered_rules_follow_the_default_grouping() {
        assert_eq!(classify("google", "cpc", false, ""), Channel::PaidSearch);
        assert_eq!(
            classify("", "", true, "www.google.com"),
            Channel::PaidSearch
        );
        assert_eq!(classify("yandex", "cpc", false, ""), Channel::PaidSearch);
        assert_eq!(classify("", "", false, "yandex.ru"), Channel::OrganicSearch);
        assert_eq!(
            classify("", "", false, "go.mail.ru"),
            Channel::OrganicSearch
        );
        assert_eq!(
            classify("vk", "paid_social", false, ""),
            Channel::PaidSocial
        );
        assert_eq!(classify("", "", false, "vk.com"), Channel::OrganicSocial);
        assert_eq!(classify("", "", false, "ok.ru"), Channel::OrganicSocial);
        assert_eq!(classify("", "", false, "t.me"), Channel::OrganicSocial);
        assert_eq!(classify("", "", false, "dzen.ru"), Channel::OrganicSocial);
        assert_eq!(classify("", "", false, "e.mail.ru"), Channel::Email);
        assert_eq!(classify("newsletter", "email", false, ""), Channel::Email);
        assert_eq!(
            classify("", "", false, "blog.example.org"),
            Channel::Referral
        );
        assert_eq!(classify("", "", false, ""), Channel::Direct);
        assert_eq!(classify("partner", "cpc", false, ""), Channel::Other);
    }

    /// The matching rule as first written: the host split again for each
    /// domain, dotted and bare domains told apart.
    fn host_matches_by_splitting(host: &str, domain: &str) -> bool {
        let (h, d) = (host.as_bytes(), domain.as_bytes());
        if d.contains(&b'.') {
            h.len() >= d.len()
                && h[h.len() - d.len()..].eq_ignore_ascii_case(d)
                && (h.len() == d.len() || h[h.len() - d.len() - 1] == b'.')
        } else {
            h.split(|&b| b == b'.')
                .any(|label| label.eq_ignore_ascii_case(d))
        }
    }

    #[test]
    fn hosts_split_once_match_exactly_as_split_for_each_domain() {
        // Every string of up to 5 symbols over an alphabet with dots, case
        // and a two-byte character, as hosts and as domains, plus the
        // built-in lists and hosts of more labels than are held in place.
        let alphabet = ["a", "B", "b", ".", "\u{e9}"];
        let mut strings = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..5 {
            layer = layer
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(layer.iter().cloned());
        }
        let mut domains: Vec<String> = strings.iter().filter(|s| s.len() <= 3).cloned().collect();
        domains.extend(
            SEARCH
                .iter()
                .chain(SOCIAL)
                .chain(WEBMAIL)
                .map(|d| d.to_string()),
        );
        let mut hosts = strings;
        hosts.extend(
            [
                "a.b.c.d.e.f.g.h.i.google",
                "google.a.b.c.d.e.f.g.h.i",
                "x.mail.google.com",
            ]
            .map(String::from),
        );
        hosts.extend(
            [
                "WWW.GOOGLE.CO.UK",
                "vk.com",
                "t.co",
                "sub.t.me",
                ".",
                "a..b",
                "google.",
            ]
            .map(String::from),
        );
        let mut hits = 0;
        for h in &hosts {
            let host = Host::new(h);
            for d in &domains {
                let want = host_matches_by_splitting(h, d);
                assert_eq!(host.matches(d), want, "host {h:?}, domain {d:?}");
                hits += usize::from(want);
            }
        }
        assert!(hits > 1_000, "the cases include matches ({hits})");
    }

    #[test]
    fn own_domain_referrers_are_direct_not_referral() {
        assert_eq!(classify("", "", false, "shop.example"), Channel::Direct);
        assert_eq!(
            classify("", "", false, "checkout.shop.example"),
            Channel::Direct
        );
        assert_eq!(classify("", "", false, "www.shop.example"), Channel::Direct);
    }

    #[test]
    fn user_rules_come_first() {
        let rules = ChannelRules {
            rules: vec![ChannelRule {
                channel: Some(Channel::PaidSocial),
                source: Some("MyAds".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let c = Campaign {
            source: Some("myads".into()),
            ..Default::default()
        };
        assert_eq!(rules.classify(&c, None), Channel::PaidSocial);
    }
}
