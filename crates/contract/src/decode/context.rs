//! The `context` object: the page (path, host, referrer), the campaign
//! (from the page URL's utm parameters and click ids, overridden by
//! `context.campaign`), the device and the experiment.

use crate::event::{Campaign, Device, Experiment, Page, Text};
use crate::reason::{Invalid, Reason};
use crate::url;

use super::raw::{
    lower, opt_str, present, req_str, CampaignRaw, Context, ExperimentRaw, Nested, PageRaw,
};
use super::Decoder;

/// What `context` holds, checked.
pub(super) struct Checked {
    pub(super) page: Option<Page>,
    pub(super) campaign: Campaign,
    pub(super) device: Device,
    pub(super) experiment: Option<Experiment>,
}

impl Decoder {
    /// Reads and checks `context`.
    pub(super) fn context(&self, raw: &Nested<Context<'_>>) -> Result<Checked, Invalid> {
        let none = Context::default();
        let ctx = raw.in_place("context")?.unwrap_or(&none);
        // The page's URL is read once, for the page and the URL's campaign
        // parameters.
        let page_raw = ctx.page.present("context.page")?;
        let url = match &page_raw {
            Some(p) => opt_str(p.url, "context.page.url", 8192)?,
            None => None,
        };
        let parts = url.as_deref().map(url::split);
        let page = self.page(parts.as_ref(), page_raw.as_ref())?;
        let campaign = self.campaign(ctx.campaign, parts.as_ref().map(|p| p.query))?;
        let device = device(ctx.device)?;
        let experiment = experiment(ctx.experiment)?;
        Ok(Checked {
            page,
            campaign,
            device,
            experiment,
        })
    }

    fn page(
        &self,
        parts: Option<&url::UrlParts<'_>>,
        p: Option<&PageRaw<'_>>,
    ) -> Result<Option<Page>, Invalid> {
        let (Some(parts), Some(p)) = (parts, p) else {
            return Ok(None);
        };
        let mut cut = parts.path.len().min(512);
        while !parts.path.is_char_boundary(cut) {
            cut -= 1;
        }
        let path = Text::new(&parts.path[..cut]);
        let referrer_host = opt_str(p.referrer, "context.page.referrer", 8192)?
            .map(|r| lower(url::split(&r).host))
            .filter(|h| !h.is_empty());
        Ok(Some(Page {
            path,
            host: lower(parts.host),
            referrer_host,
        }))
    }

    fn campaign(
        &self,
        raw: Nested<CampaignRaw<'_>>,
        page_query: Option<&str>,
    ) -> Result<Campaign, Invalid> {
        let mut c = Campaign::default();
        // utm_* from the page URL first; context.campaign overrides.
        if let Some(query) = page_query {
            for (k, v) in url::query_pairs(query) {
                let v = || Some(Text::from(url::decode_component(v))).filter(|v| !v.is_empty());
                match k {
                    "utm_source" => c.source = v(),
                    "utm_medium" => c.medium = v(),
                    "utm_campaign" => c.name = v(),
                    "gclid" | "gbraid" | "wbraid" | "dclid" | "msclkid" | "yclid" | "fbclid"
                    | "ttclid" | "vkclid" => c.click_id = true,
                    _ => {}
                }
            }
        }
        let cr: CampaignRaw<'_> = raw.get("context.campaign")?;
        if let Some(s) = opt_str(cr.source, "context.campaign.source", 256)? {
            c.source = Some(s.into());
        }
        if let Some(s) = opt_str(cr.medium, "context.campaign.medium", 256)? {
            c.medium = Some(s.into());
        }
        if let Some(s) = opt_str(cr.name, "context.campaign.name", 256)? {
            c.name = Some(s.into());
        }
        for s in [&mut c.source, &mut c.medium].into_iter().flatten() {
            if !s.is_ascii() || s.bytes().any(|b| b.is_ascii_uppercase()) {
                *s = s.to_lowercase();
            }
        }
        Ok(c)
    }
}

fn device(raw: super::raw::Raw<'_>) -> Result<Device, Invalid> {
    Ok(match opt_str(raw, "context.device", 16)?.as_deref() {
        None => Device::Unknown,
        Some("desktop") => Device::Desktop,
        Some("mobile") => Device::Mobile,
        Some("tablet") => Device::Tablet,
        Some("bot") => Device::Bot,
        Some(other) => {
            return Err(Invalid::new(
                Reason::OutOfRange,
                Some("context.device"),
                format!("unknown device {other:.16}"),
            ))
        }
    })
}

fn experiment(raw: Nested<ExperimentRaw<'_>>) -> Result<Option<Experiment>, Invalid> {
    Ok(match raw.present("context.experiment")? {
        // An experiment object with every field empty is no experiment.
        Some(e) if present(e.id).is_none() && present(e.variant).is_none() => None,
        None => None,
        Some(e) => Some(Experiment {
            id: req_str(e.id, "context.experiment.id", 128)?.into(),
            variant: req_str(e.variant, "context.experiment.variant", 128)?.into(),
        }),
    })
}
