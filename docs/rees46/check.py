#!/usr/bin/env python3
"""Independent check of the pipeline's figures on a REES46 export.

Reads the contract events that `cargo run --example rees46` made (JSON lines)
and recomputes sessions, the funnel, orders, revenue, AOV and carts from the
definitions in docs/metrics.md, sharing no code with the pipeline.

    python3 docs/rees46/check.py events.jsonl [stage stage ...]
"""
import json
import sys
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

GAP = 30 * 60 * 1000
MAX = 24 * 3600 * 1000
CART_TIMEOUT = 60 * 60 * 1000


def ms(ts):
    if isinstance(ts, int):
        return ts
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def main():
    path = sys.argv[1]
    stages = sys.argv[2:] or ["product_view", "add_to_cart", "order_placed"]
    events = [json.loads(line) for line in open(path)]
    for e in events:
        e["ms"] = ms(e["timestamp"])
    # Events of one instant: by visitor, storefront events before order events,
    # storefront events grouped by session id, then the causal rank and the id.
    lifecycle = ("order_placed", "order_paid", "order_cancelled", "order_refunded")
    ranks = ["page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_started",
             *lifecycle, "signup", "referral_sent", "survey_response", "ad_spend"]

    def instant_key(e):
        server = e["type"] in lifecycle
        sid = "" if server else (e.get("session_id") or "")
        return (e["ms"], e["anonymous_id"], server, sid, ranks.index(e["type"]), e["event_id"])
    events.sort(key=instant_key)

    # Sessions: one in use per visitor; it ends after a gap over 30 min or 24 h.
    # An event under another storefront session id sets it aside and continues
    # the visitor's session under that id if one is still open, else starts
    # one. Order events join the session in use, or an open one of the visitor
    # they name; they never open one.
    open_s = {}
    parked = defaultdict(list)
    sessions = []

    def live(s, t):
        return t - s["last"] <= GAP and t - s["start"] < MAX

    for e in events:
        v = e["anonymous_id"]
        s = open_s.get(v)
        server = e["type"] in lifecycle
        sid = None if server else e.get("session_id")
        if s and not live(s, e["ms"]):
            sessions.append(open_s.pop(v))
            s = None
        elif s and e.get("session_id") and s["sid"] and e["session_id"] != s["sid"] and (
                not server or any(p["sid"] == e["session_id"] and live(p, e["ms"]) for p in parked[v])):
            parked[v].append(open_s.pop(v))
            s = None
        if not s and e.get("session_id"):
            back = [p for p in parked[v] if p["sid"] == e["session_id"] and live(p, e["ms"])]
            if back:
                parked[v].remove(back[0])
                s = open_s[v] = back[0]
        if not s and server:
            continue
        if not s:
            s = open_s[v] = {"start": e["ms"], "last": e["ms"], "sid": sid, "pv": 0,
                             "stage": 0, "any": set(), "orders": 0}
        s["last"] = e["ms"]
        s["sid"] = s["sid"] or sid
        if e["type"] == "page_view":
            s["pv"] += 1
        if e["type"] in stages:
            i = stages.index(e["type"])
            s["any"].add(i)
            if i == s["stage"]:
                s["stage"] += 1
        if e["type"] == "order_placed":
            s["orders"] += 1
    sessions.extend(open_s.values())
    sessions.extend(p for ps in parked.values() for p in ps)

    print(f"sessions {len(sessions)}; visitors {len({e['anonymous_id'] for e in events})}")
    print(f"page views {sum(s['pv'] for s in sessions)}; single-page sessions "
          f"{sum(1 for s in sessions if s['pv'] == 1)}")
    print("funnel (sequential / any order):")
    print(f"  session {len(sessions)} / {len(sessions)}")
    for i, st in enumerate(stages):
        seq = sum(1 for s in sessions if s["stage"] > i)
        anyo = sum(1 for s in sessions if i in s["any"])
        print(f"  {st} {seq} / {anyo}")
    print(f"converting sessions {sum(1 for s in sessions if s['orders'])}")

    orders = [e for e in events if e["type"] == "order_placed"]
    gross = sum(Decimal(e["properties"]["total"]) for e in orders)
    print(f"orders {len(orders)}; gross revenue {gross}; AOV {(gross / len(orders)).quantize(Decimal('0.01'))}")

    # Carts: converted by an order for the cart within 60 min of its last activity, else abandoned if not empty.
    # A cart id used again after its cart was ordered or abandoned is a new cart.
    finished = []
    carts = {}

    def new_cart():
        return {"lines": defaultdict(int), "price": {}, "last": None, "done": None}

    for e in events:
        p = e.get("properties", {})
        if e["type"] in ("add_to_cart", "remove_from_cart"):
            c = carts.get(p["cart_id"])
            if c and (c["done"] or e["ms"] - c["last"] > CART_TIMEOUT):
                finished.append(c)
                c = None
            if not c:
                if e["type"] == "remove_from_cart":
                    continue
                c = carts[p["cart_id"]] = new_cart()
            q = int(p["product"].get("quantity", 1)) * (1 if e["type"] == "add_to_cart" else -1)
            c["lines"][p["product"]["product_id"]] = max(0, c["lines"][p["product"]["product_id"]] + q)
            c["price"][p["product"]["product_id"]] = Decimal(p["product"]["price"])
            c["last"] = e["ms"]
        elif e["type"] == "order_placed" and p.get("cart_id") in carts:
            c = carts[p["cart_id"]]
            if not c["done"] and e["ms"] - c["last"] <= CART_TIMEOUT:
                c["done"] = "converted"
    all_carts = finished + list(carts.values())
    abandoned = [c for c in all_carts if not c["done"] and any(c["lines"].values())]
    value = sum(sum(q * c["price"][pid] for pid, q in c["lines"].items()) for c in abandoned)
    print(f"carts {len(all_carts)}: converted {sum(1 for c in all_carts if c['done'])}, "
          f"abandoned {len(abandoned)} worth {value}")


if __name__ == "__main__":
    main()
