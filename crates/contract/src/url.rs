//! Just enough URL handling for page context: host, path and query parameters.

/// The parts of an absolute or relative URL that the contract uses.
pub(crate) struct UrlParts<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
}

/// Splits `url` into host, path and query; the fragment is dropped.
pub(crate) fn split(url: &str) -> UrlParts<'_> {
    let url = url.split('#').next().unwrap_or("");
    let (before_query, query) = url.split_once('?').unwrap_or((url, ""));
    let (host, path) = match before_query.find("//") {
        Some(i) if !before_query[..i].contains('/') => {
            let rest = &before_query[i + 2..];
            let end = rest.find('/').unwrap_or(rest.len());
            let authority = &rest[..end];
            let host = authority.rsplit('@').next().unwrap_or("");
            let host = host.split(':').next().unwrap_or("");
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

/// Decodes `%XX` escapes and `+` of a query value, lossily.
pub(crate) fn decode_component(v: &str) -> String {
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
    String::from_utf8_lossy(&out).into_owned()
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
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(decode_component("spring%20sale+2019"), "spring sale 2019");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz"), "%zz");
    }
}
