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
//! Each object's known keys are matched as words ([`scan_keys`]).

use super::raw::{
    CampaignRaw, Context, Envelope, ExperimentRaw, Json, Nested, PageRaw, ProductRaw, Props, Raw,
};
use super::scan_keys::{self, Key};

/// Nesting deeper than this inside a value is left to serde_json (whose own
/// limit, 128 levels, is then never the reason this reader accepts).
const MAX_DEPTH: u32 = 16;

/// Reads `text` into `env` (which starts as its default); `None` when
/// serde_json must read it (`env` is then partly filled).
pub(super) fn envelope<'a>(text: &'a str, env: &mut Envelope<'a>) -> Option<()> {
    const KEYS: [Key; 9] = [
        Key::new("event_id"),
        Key::new("type"),
        Key::new("timestamp"),
        Key::new("sent_at"),
        Key::new("anonymous_id"),
        Key::new("user_id"),
        Key::new("session_id"),
        Key::new("context"),
        Key::new("properties"),
    ];
    let mut s = Scan { text, pos: 0 };
    s.ws();
    s.object(&KEYS, |s, field| match field {
        Some(0) => s.raw(&mut env.event_id),
        Some(1) => s.raw(&mut env.kind),
        Some(2) => s.raw(&mut env.timestamp),
        Some(3) => s.raw(&mut env.sent_at),
        Some(4) => s.raw(&mut env.anonymous_id),
        Some(5) => s.raw(&mut env.user_id),
        Some(6) => s.raw(&mut env.session_id),
        Some(7) => s.nested(&mut env.context, context),
        Some(8) => s.nested(&mut env.properties, props),
        _ => s.skip(0),
    })?;
    s.ws();
    (s.pos == text.len()).then_some(())
}

fn context<'a>(s: &mut Scan<'a>, c: &mut Context<'a>) -> Option<()> {
    const KEYS: [Key; 4] = [
        Key::new("device"),
        Key::new("page"),
        Key::new("campaign"),
        Key::new("experiment"),
    ];
    s.object(&KEYS, |s, field| match field {
        Some(0) => s.raw(&mut c.device),
        Some(1) => s.nested(&mut c.page, page),
        Some(2) => s.nested(&mut c.campaign, campaign),
        Some(3) => s.nested(&mut c.experiment, experiment),
        _ => s.skip(0),
    })
}

fn page<'a>(s: &mut Scan<'a>, p: &mut PageRaw<'a>) -> Option<()> {
    const KEYS: [Key; 2] = [Key::new("url"), Key::new("referrer")];
    s.object(&KEYS, |s, field| match field {
        Some(0) => s.raw(&mut p.url),
        Some(1) => s.raw(&mut p.referrer),
        _ => s.skip(0),
    })
}

fn campaign<'a>(s: &mut Scan<'a>, c: &mut CampaignRaw<'a>) -> Option<()> {
    const KEYS: [Key; 3] = [Key::new("source"), Key::new("medium"), Key::new("name")];
    s.object(&KEYS, |s, field| match field {
        Some(0) => s.raw(&mut c.source),
        Some(1) => s.raw(&mut c.medium),
        Some(2) => s.raw(&mut c.name),
        _ => s.skip(0),
    })
}

fn experiment<'a>(s: &mut Scan<'a>, e: &mut ExperimentRaw<'a>) -> Option<()> {
    const KEYS: [Key; 2] = [Key::new("id"), Key::new("variant")];
    s.object(&KEYS, |s, field| match field {
        Some(0) => s.raw(&mut e.id),
        Some(1) => s.raw(&mut e.variant),
        _ => s.skip(0),
    })
}

fn props<'a>(s: &mut Scan<'a>, p: &mut Props<'a>) -> Option<()> {
    const KEYS: [Key; 16] = [
        Key::new("currency"),
        Key::new("product"),
        Key::new("products"),
        Key::new("cart_id"),
        Key::new("order_id"),
        Key::new("value"),
        Key::new("total"),
        Key::new("amount"),
        Key::new("referral_code"),
        Key::new("survey"),
        Key::new("score"),
        Key::new("scale_max"),
        Key::new("channel"),
        Key::new("campaign"),
        Key::new("period_start"),
        Key::new("period_end"),
    ];
    s.object(&KEYS, |s, field| match field {
        Some(0) => s.raw(&mut p.currency),
        Some(1) => s.nested(&mut p.product, product),
        Some(2) => s.raw(&mut p.products),
        Some(3) => s.raw(&mut p.cart_id),
        Some(4) => s.raw(&mut p.order_id),
        Some(5) => s.raw(&mut p.value),
        Some(6) => s.raw(&mut p.total),
        Some(7) => s.raw(&mut p.amount),
        Some(8) => s.raw(&mut p.referral_code),
        Some(9) => s.raw(&mut p.survey),
        Some(10) => s.raw(&mut p.score),
        Some(11) => s.raw(&mut p.scale_max),
        Some(12) => s.raw(&mut p.channel),
        Some(13) => s.raw(&mut p.campaign),
        Some(14) => s.raw(&mut p.period_start),
        Some(15) => s.raw(&mut p.period_end),
        _ => s.skip(0),
    })
}

fn product<'a>(s: &mut Scan<'a>, p: &mut ProductRaw<'a>) -> Option<()> {
    const KEYS: [Key; 4] = [
        Key::new("product_id"),
        Key::new("category"),
        Key::new("price"),
        Key::new("quantity"),
    ];
    s.object(&KEYS, |s, field| match field {
        Some(0) => s.raw(&mut p.product_id),
        Some(1) => s.raw(&mut p.category),
        Some(2) => s.raw(&mut p.price),
        Some(3) => s.raw(&mut p.quantity),
        _ => s.skip(0),
    })
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

    /// An object, at its `{`, whose known keys are `keys`: `field` reads
    /// each field's value, given its key's index in `keys` (`None` for a
    /// key not known: it checks and skips the value). A known key given
    /// twice leaves the message to serde_json (serde's derive rejects it).
    fn object(
        &mut self,
        keys: &[Key],
        mut field: impl FnMut(&mut Self, Option<usize>) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let (mut seen, mut guess) = (0u32, 0);
        loop {
            let key = self.key(keys, guess)?;
            if let Some(i) = key {
                let bit = 1 << i;
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                guess = i + 1;
            }
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

    /// A key (without escapes), at its opening quote: its index in `keys`,
    /// `None` when it is not one of them. Inlined into each object's
    /// reader, where the key table is known: called, it cost about 400
    /// instructions a message (callgrind), which an unrelated change to the
    /// crate was enough to bring about.
    #[inline(always)]
    fn key(&mut self, keys: &[Key], guess: usize) -> Option<Option<usize>> {
        let rest = self.text.as_bytes().get(self.pos + 1..)?;
        if self.peek()? == b'"' {
            if let Some(len) = scan_keys::expected(keys, guess, rest) {
                self.pos += 1 + len;
                return Some(Some(guess));
            }
        }
        let key = self.string()?;
        Some(scan_keys::named(keys, key))
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
            b'{' if depth < MAX_DEPTH => self.object(&[], |s, _| s.skip(depth + 1)),
            b'[' if depth < MAX_DEPTH => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A field kept as raw JSON text in `slot`: `None` for `null`, as
    /// serde_json's `Option` reads it.
    fn raw(&mut self, slot: &mut Raw<'a>) -> Option<()> {
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        let start = self.pos;
        self.skip(0)?;
        // No string in it had a backslash, and none can stand outside one.
        *slot = Some(Json::plain(&self.text[start..self.pos]));
        Some(())
    }

    /// A field that should hold an object, read into `slot` by `read`, as
    /// [`Nested`]'s `Deserialize` reads it.
    fn nested<T: Default>(
        &mut self,
        slot: &mut Nested<T>,
        read: impl FnOnce(&mut Self, &mut T) -> Option<()>,
    ) -> Option<()> {
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
