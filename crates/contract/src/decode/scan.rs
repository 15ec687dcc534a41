//! The envelope read in one pass over the bytes, for the messages
//! storefronts send: each field's JSON text found where serde_json would
//! find it, at a fraction of the cost of its generic reader.
//!
//! The reader gives up (`None`) on anything it does not read exactly as
//! serde_json does: an escape in any string, a control character, a number
//! where an object goes (serde_json checks its range there), a field given
//! twice (serde's derive rejects it), nesting deeper than [`MAX_DEPTH`], and
//! any syntax error. The decoder then reads the message with serde_json, so
//! what is rejected, and how, stays serde_json's. What it accepts it reads
//! as serde_json reads it: `null` for an absent field, a raw value's text
//! without the whitespace around it, unknown fields skipped but checked.

use super::raw::{
    CampaignRaw, Context, Envelope, ExperimentRaw, Json, Nested, PageRaw, ProductRaw, Props, Raw,
};

/// Nesting deeper than this inside a value is left to serde_json (whose own
/// limit, 128 levels, is then never the reason this reader accepts).
const MAX_DEPTH: u32 = 16;

/// Reads `text` into `env` (which starts as its default); `None` when
/// serde_json must read it (`env` is then partly filled).
pub(super) fn envelope<'a>(text: &'a str, env: &mut Envelope<'a>) -> Option<()> {
    let mut s = Scan { text, pos: 0 };
    s.ws();
    let mut seen = 0u32;
    s.object(|s, key| {
        let seen = &mut seen;
        match key {
            "event_id" => s.raw_into(seen, 0, &mut env.event_id),
            "type" => s.raw_into(seen, 1, &mut env.kind),
            "timestamp" => s.raw_into(seen, 2, &mut env.timestamp),
            "sent_at" => s.raw_into(seen, 3, &mut env.sent_at),
            "anonymous_id" => s.raw_into(seen, 4, &mut env.anonymous_id),
            "user_id" => s.raw_into(seen, 5, &mut env.user_id),
            "session_id" => s.raw_into(seen, 6, &mut env.session_id),
            "context" => s.nested(seen, 7, &mut env.context, context),
            "properties" => s.nested(seen, 8, &mut env.properties, props),
            _ => s.skip(0),
        }
    })?;
    s.ws();
    (s.pos == text.len()).then_some(())
}

fn context<'a>(s: &mut Scan<'a>, c: &mut Context<'a>) -> Option<()> {
    let mut seen = 0u32;
    s.object(|s, key| {
        let seen = &mut seen;
        match key {
            "page" => s.nested(seen, 0, &mut c.page, page),
            "campaign" => s.nested(seen, 1, &mut c.campaign, campaign),
            "device" => s.raw_into(seen, 2, &mut c.device),
            "experiment" => s.nested(seen, 3, &mut c.experiment, experiment),
            _ => s.skip(0),
        }
    })
}

fn page<'a>(s: &mut Scan<'a>, p: &mut PageRaw<'a>) -> Option<()> {
    let mut seen = 0u32;
    s.object(|s, key| match key {
        "url" => s.raw_into(&mut seen, 0, &mut p.url),
        "referrer" => s.raw_into(&mut seen, 1, &mut p.referrer),
        _ => s.skip(0),
    })
}

fn campaign<'a>(s: &mut Scan<'a>, c: &mut CampaignRaw<'a>) -> Option<()> {
    let mut seen = 0u32;
    s.object(|s, key| match key {
        "source" => s.raw_into(&mut seen, 0, &mut c.source),
        "medium" => s.raw_into(&mut seen, 1, &mut c.medium),
        "name" => s.raw_into(&mut seen, 2, &mut c.name),
        _ => s.skip(0),
    })
}

fn experiment<'a>(s: &mut Scan<'a>, e: &mut ExperimentRaw<'a>) -> Option<()> {
    let mut seen = 0u32;
    s.object(|s, key| match key {
        "id" => s.raw_into(&mut seen, 0, &mut e.id),
        "variant" => s.raw_into(&mut seen, 1, &mut e.variant),
        _ => s.skip(0),
    })
}

fn props<'a>(s: &mut Scan<'a>, p: &mut Props<'a>) -> Option<()> {
    let mut seen = 0u32;
    s.object(|s, key| {
        let seen = &mut seen;
        match key {
            "currency" => s.raw_into(seen, 0, &mut p.currency),
            "product" => s.nested(seen, 1, &mut p.product, product),
            "products" => s.raw_into(seen, 2, &mut p.products),
            "cart_id" => s.raw_into(seen, 3, &mut p.cart_id),
            "order_id" => s.raw_into(seen, 4, &mut p.order_id),
            "value" => s.raw_into(seen, 5, &mut p.value),
            "total" => s.raw_into(seen, 6, &mut p.total),
            "amount" => s.raw_into(seen, 7, &mut p.amount),
            "referral_code" => s.raw_into(seen, 8, &mut p.referral_code),
            "survey" => s.raw_into(seen, 9, &mut p.survey),
            "score" => s.raw_into(seen, 10, &mut p.score),
            "scale_max" => s.raw_into(seen, 11, &mut p.scale_max),
            "channel" => s.raw_into(seen, 12, &mut p.channel),
            "campaign" => s.raw_into(seen, 13, &mut p.campaign),
            "period_start" => s.raw_into(seen, 14, &mut p.period_start),
            "period_end" => s.raw_into(seen, 15, &mut p.period_end),
            _ => s.skip(0),
        }
    })
}

fn product<'a>(s: &mut Scan<'a>, p: &mut ProductRaw<'a>) -> Option<()> {
    let mut seen = 0u32;
    s.object(|s, key| match key {
        "product_id" => s.raw_into(&mut seen, 0, &mut p.product_id),
        "category" => s.raw_into(&mut seen, 1, &mut p.category),
        "price" => s.raw_into(&mut seen, 2, &mut p.price),
        "quantity" => s.raw_into(&mut seen, 3, &mut p.quantity),
        _ => s.skip(0),
    })
}

/// Marks a known field as read; `None` if it already was (serde's derive
/// rejects a repeated field).
fn once(seen: &mut u32, field: u32) -> Option<()> {
    let bit = 1 << field;
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// A cursor over the message's text.
struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace, as serde_json does.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let rest = &self.text.as_bytes()[self.pos..];
        rest.starts_with(word).then(|| self.pos += word.len())
    }

    /// An object, at its `{`: each key (without escapes) is given to
    /// `field`, which reads its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            field(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
            self.ws();
        }
    }

    /// An array, at its `[`, its elements checked and skipped.
    fn array(&mut self, depth: u32) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.skip(depth)?;
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
            self.ws();
        }
    }

    /// Checks and skips any value, `depth` levels inside a field's value.
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' if depth < MAX_DEPTH => self.object(|s, _| s.skip(depth + 1)),
            b'[' if depth < MAX_DEPTH => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// Known field `field` of the object, kept as raw JSON text in `slot`:
    /// `None` for `null`, as serde_json's `Option` reads it.
    fn raw_into(&mut self, seen: &mut u32, field: u32, slot: &mut Raw<'a>) -> Option<()> {
        once(seen, field)?;
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        let start = self.pos;
        self.skip(0)?;
        // No string in it had a backslash, and none can stand outside one.
        *slot = Some(Json::plain(&self.text[start..self.pos]));
        Some(())
    }

    /// Known field `field` of the object, which should hold an object, read
    /// into `slot` by `read`, as [`Nested`]'s `Deserialize` reads it.
    fn nested<T: Default>(
        &mut self,
        seen: &mut u32,
        field: u32,
        slot: &mut Nested<T>,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
        once(seen, field)?;
        *slot = match self.peek()? {
            b'{' => {
                *slot = Nested::Object(T::default());
                let Nested::Object(t) = slot else {
                    return None;
                };
                return read(self, t);
            }
            b'[' => {
                self.array(1)?;
                Nested::NotObject
            }
            b'n' => {
                self.literal(b"null")?;
                Nested::Absent
            }
            b't' => {
                self.literal(b"true")?;
                Nested::NotObject
            }
            b'f' => {
                self.literal(b"false")?;
                Nested::NotObject
            }
            b'"' if self.string()?.is_empty() => Nested::Absent,
            b'"' => Nested::NotObject,
            // A number: serde_json reads its value here, and rejects one
            // out of f64's range.
            _ => return None,
        };
        Some(())
    }

    /// A string without escapes or control characters, at its opening
    /// quote: the text between the quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = start + plain_len(&self.text.as_bytes()[start..])?;
        self.pos = end + 1;
        // Both ends are next to an ASCII quote: character boundaries.
        Some(&self.text[start..end])
    }

    /// A number as JSON writes it (serde_json's grammar: one leading zero,
    /// digits after a point and after an exponent).
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }
}

/// The length of the string body `b` starts with, up to its closing quote;
/// `None` at a backslash, a control character or the end. Eight bytes at
/// a time: a byte is flagged when it is below 0x20, a quote or a
/// backslash, and the lowest flag is always a true one.
fn plain_len(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut at = 0;
    while let Some(chunk) = b.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().ok()?);
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let s = w ^ (ONES * u64::from(b'\\'));
        let slash = s.wrapping_sub(ONES) & !s;
        let hit = (control | quote | slash) & HIGH;
        if hit != 0 {
            let i = at + (hit.trailing_zeros() / 8) as usize;
            return (b[i] == b'"').then_some(i);
        }
        at += 8;
    }
    b[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
        .filter(|&i| b[i] == b'"')
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
