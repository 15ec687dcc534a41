//! Converts a REES46-style CSV export (event_time, event_type view / cart /
//! remove_from_cart / purchase, product_id, category_id, category_code,
//! brand, price, user_id, user_session) into contract events as JSON lines.
//!
//! ```sh
//! cargo run --example rees46 -- path/to/export.csv > events.jsonl
//! shoplens replay --input events.jsonl
//! shoplens run --until-end
//! ```
//!
//! Mapping (documented in docs/metrics.md, "Checking against REES46"):
//! - the visitor is `user_id`, the storefront session is `user_session`;
//! - `view` is a product page: a `page_view` of `/product/<id>` and a
//!   `product_view` at the same instant;
//! - `cart` / `remove_from_cart` change the session's cart `cart-<session>`;
//! - consecutive `purchase` rows of one session at one instant are one
//!   order of those lines, placed from the session's cart and paid at once.

use std::io::{BufRead, BufWriter, Write};

use serde_json::{json, Value};

struct Row<'a> {
    time: String,
    kind: &'a str,
    product_id: &'a str,
    category: &'a str,
    price: &'a str,
    user: &'a str,
    session: &'a str,
}

fn parse(line: &str) -> Option<Row<'_>> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() < 9 {
        return None;
    }
    // "2019-10-01 00:00:00 UTC" -> "2019-10-01T00:00:00Z"
    let time = format!("{}Z", f[0].strip_suffix(" UTC")?.replacen(' ', "T", 1));
    Some(Row {
        time,
        kind: f[1],
        product_id: f[2],
        category: f[4],
        price: f[6],
        user: f[7],
        session: f[8],
    })
}

fn base(id: String, kind: &str, r: &Row<'_>) -> Value {
    json!({
        "event_id": id,
        "type": kind,
        "timestamp": r.time,
        "anonymous_id": r.user,
        "user_id": r.user,
        "session_id": r.session,
    })
}

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1);
    let input: Box<dyn BufRead> = match path.as_deref() {
        Some(p) if p != "-" => Box::new(std::io::BufReader::new(std::fs::File::open(p)?)),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut order: Option<(String, String, Vec<Value>, Value)> = None; // (session, time, lines, template)
    let mut skipped = 0u64;
    let flush = |order: &mut Option<(String, String, Vec<Value>, Value)>,
                 out: &mut BufWriter<_>|
     -> std::io::Result<()> {
        if let Some((session, time, lines, mut e)) = order.take() {
            let order_id = format!("{session}-{time}");
            let total: i64 = lines
                .iter()
                .map(|l| {
                    contract::money::parse_minor(l["price"].as_str().unwrap_or("0"), 2).unwrap_or(0)
                })
                .sum();
            e["event_id"] = json!(format!("order-{order_id}"));
            e["properties"] = json!({
                "order_id": order_id,
                "cart_id": format!("cart-{session}"),
                "total": format!("{}.{:02}", total / 100, total % 100),
                "currency": "USD",
                "products": lines,
            });
            writeln!(out, "{e}")?;
            let mut paid = e.clone();
            paid["type"] = json!("order_paid");
            paid["event_id"] = json!(format!("paid-{order_id}"));
            paid["properties"] = json!({ "order_id": order_id });
            writeln!(out, "{paid}")?;
        }
        Ok(())
    };
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        let Some(r) = parse(&line) else {
            if n > 0 {
                skipped += 1;
            }
            continue;
        };
        if r.kind != "purchase"
            || order
                .as_ref()
                .is_some_and(|(s, t, ..)| s != r.session || *t != r.time)
        {
            flush(&mut order, &mut out)?;
        }
        let line_item = json!({ "product_id": r.product_id, "price": r.price, "quantity": 1 });
        match r.kind {
            "view" => {
                let mut pv = base(format!("r{n}-page"), "page_view", &r);
                pv["context"] = json!({ "page": { "url": format!("https://rees46.example/product/{}", r.product_id) } });
                writeln!(out, "{pv}")?;
                let mut v = base(format!("r{n}-view"), "product_view", &r);
                let mut product = json!({ "product_id": r.product_id, "price": r.price });
                if !r.category.is_empty() {
                    product["category"] = json!(r.category);
                }
                v["properties"] = json!({ "product": product, "currency": "USD" });
                writeln!(out, "{v}")?;
            }
            "cart" | "remove_from_cart" => {
                let kind = if r.kind == "cart" {
                    "add_to_cart"
                } else {
                    "remove_from_cart"
                };
                let mut e = base(format!("r{n}-cart"), kind, &r);
                e["properties"] = json!({ "cart_id": format!("cart-{}", r.session), "product": line_item, "currency": "USD" });
                writeln!(out, "{e}")?;
            }
            "purchase" => match &mut order {
                Some((_, _, lines, _)) => lines.push(line_item),
                None => {
                    let template = base(String::new(), "order_placed", &r);
                    order = Some((
                        r.session.to_string(),
                        r.time.clone(),
                        vec![line_item],
                        template,
                    ));
                }
            },
            _ => skipped += 1,
        }
    }
    flush(&mut order, &mut out)?;
    out.flush()?;
    eprintln!("rees46: skipped {skipped} rows");
    Ok(())
}
