//! Just enough URL handling for page context: host, path and query parameters.

/// The parts of an absolute or relative URL that the contract uses.
pub(crate) struct UrlParts<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
}

/// Splits `url` into host, path and query; the fragment is dropped.
///
/// One pass over the bytes for each delimiter, all ASCII, so every slice
/// ends on a character boundary. A host is read only after a leading `//`
/// (absolute or scheme-relative URL): the first `/` of the URL followed by
/// another.
pub(crate) fn split(url: &str) -> UrlParts<'_> {
    let find = |s: &str, c: u8| s.bytes().position(|b| b == c);
    let url = &url[..find(url, b'#').unwrap_or(url.len())];
    let (before_query, query) = match find(url, b'?') {
        Some(q) => (&url[..q], &url[q + 1..]),
        None => (url, ""),
    };
    let (host, path) = match find(before_query, b'/') {
        Some(i) if before_query.as_bytes().get(i + 1) == Some(&b'/') => {
            let rest = &before_query[i + 2..];
            let end = find(rest, b'/').unwrap_or(rest.len());
            let authority = &rest[..end];
            let host = match authority.bytes().rposition(|b| b == b'@') {
                Some(at) => &authority[at + 1..],
                None => authority,
            };
            let host = &host[..find(host, b':').unwrap_or(host.len())];
            (host, &rest[end..])
        }
        _ => ("", before_query),
    };
    UrlParts {
        host,
        path: if path.is_empty() { "/" } else { path },
        query,
    }
}

/// Iterates `key=value` pairs of a query string (values are not decoded).
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Decodes `%XX` escapes and `+` of a query value, lossily; borrowed when
/// there is nothing to decode (most `utm_*` values).
pub(crate) fn decode_component(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['%', '+']) {
        return std::borrow::Cow::Borrowed(v);
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => std::borrow::Cow::Owned(text),
        Err(e) => std::borrow::Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_absolute_and_relative_urls() {
        let p = split("https://user@Shop.example:8443/p/42?utm_source=x#top");
        assert_eq!(
            (p.host, p.path, p.query),
            ("Shop.example", "/p/42", "utm_source=x")
        );
        let p = split("/cart?x=1");
        assert_eq!((p.host, p.path, p.query), ("", "/cart", "x=1"));
        let p = split("https://shop.example");
        assert_eq!((p.host, p.path), ("shop.example", "/"));
        let p = split("//cdn.example/a//b?q#f?g");
        assert_eq!((p.host, p.path, p.query), ("cdn.example", "/a//b", "q"));
        let p = split("a/b//c");
        assert_eq!((p.host, p.path, p.query), ("", "a/b//c", ""));
        let p = split("https://a@b@h\u{e9}.example:1/x");
        assert_eq!((p.host, p.path), ("h\u{e9}.example", "/x"));
    }

    #[test]
    fn every_mix_of_delimiters_and_multibyte_text_splits_without_panicking() {
        let pieces = ["é", "/", "//", "?", "#", "@", ":", "a", "€", "%"];
        let mut url = String::new();
        for n in 0..pieces.len().pow(5) {
            url.clear();
            let mut k = n;
            for _ in 0..5 {
                url.push_str(pieces[k % pieces.len()]);
                k /= pieces.len();
            }
            let p = split(&url);
            let fragment_free = url.split('#').next().unwrap_or("");
            assert!(fragment_free.contains(p.host), "{url:?}");
            assert!(p.path == "/" || fragment_free.contains(p.path), "{url:?}");
            assert!(fragment_free.contains(p.query), "{url:?}");
            for (_, value) in query_pairs(p.query) {
                assert!(decode_component(value).len() <= value.len() * 3, "{url:?}");
            }
        }
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(decode_component("spring%20sale+2019"), "spring sale 2019");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz"), "%zz");
    }
}
