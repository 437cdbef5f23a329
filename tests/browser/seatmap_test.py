#!/usr/bin/env python3
"""Two buyers on the seat-map page in a real browser (Playwright driving Debian's chromium).

Run by tests/tests/seatmap_browser.rs against a server it started, with an event that has a
seated section (rows A and B) and a GA section `ga`, a short hold TTL, and two user tokens:

    seatmap_test.py --base http://127.0.0.1:PORT --event show --ttl 8 \
        --token-a ALICE --token-b BOB --out target/browser-artifacts

Exit status: 0 passed, 1 failed (an assertion, with a screenshot of each page), 3 the browser
or Playwright is missing. Screenshots of every step go to --out.
"""

import argparse
import os
import re
import sys
import time
import traceback

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--ttl", type=int, required=True, help="the event's hold TTL, seconds")
    parser.add_argument("--token-a", required=True)
    parser.add_argument("--token-b", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as error:
        print(f"MISSING: playwright for Python ({error})", file=sys.stderr)
        return 3
    if not os.access(CHROMIUM, os.X_OK):
        print(f"MISSING: {CHROMIUM}", file=sys.stderr)
        return 3
    os.makedirs(args.out, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pages = {}
        try:
            run(args, browser, pages, expect)
            return 0
        except Exception:
            traceback.print_exc()
            for name, page in pages.items():
                try:
                    page.screenshot(path=os.path.join(args.out, f"failed-{name}.png"), full_page=True)
                    print(f"--- {name}'s messages: {page.locator('#messages').inner_text()!r}", file=sys.stderr)
                except Exception:
                    pass
            return 1
        finally:
            browser.close()


def run(args, browser, pages, expect):
    expect.set_options(timeout=10_000)
    url = f"{args.base}/events/{args.event}"
    a_context = browser.new_context(viewport={"width": 1000, "height": 1000})
    b_context = browser.new_context(viewport={"width": 1000, "height": 1000})
    a = a_context.new_page()
    b = b_context.new_page()
    pages.update(alice=a, bob=b)
    for page, who in ((a, "alice"), (b, "bob")):
        page.on("console", lambda m, who=who: print(f"[{who} console] {m.text}", file=sys.stderr))
    step = [0]

    def shot(name):
        step[0] += 1
        for page, who in ((a, "alice"), (b, "bob")):
            page.screenshot(path=os.path.join(args.out, f"{step[0]:02d}-{name}-{who}.png"), full_page=True)

    def seat(page, seat_id):
        return page.locator(f'button.seat[data-seat="{seat_id}"]')

    # Alice's page runs on Playwright's clock, so her countdown can be moved on at will.
    a.clock.install()
    # The token travels in the fragment: the page reads it, the browser never sends it.
    a.goto(f"{url}#token={args.token_a}")
    b.goto(f"{url}#token={args.token_b}")
    for page, who in ((a, "alice"), (b, "bob")):
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        expect(page.locator("#who")).to_have_text(f"Signed in as {who}")
        expect(seat(page, "A-1")).to_have_attribute("data-status", "free")
        expect(seat(page, "A-1")).to_have_attribute("aria-label", "Row A seat 1, free")
    shot("open")

    # 1. Alice holds A-1 by clicking it: Bob sees it held within a second.
    seat(a, "A-1").click()
    expect(seat(a, "A-1")).to_have_attribute("data-status", "mine")
    expect(seat(a, "A-1")).to_have_attribute("aria-label", "Row A seat 1, held by you")
    expect(seat(b, "A-1")).to_have_attribute("data-status", "held", timeout=1_000)
    expect(seat(b, "A-1")).to_have_attribute("aria-label", "Row A seat 1, held")
    expect(a.locator("#holds .hold").first.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    shot("alice-holds-A-1")

    # 2. Bob clicks Alice's held seat: the server says seat_taken, the page says it in words.
    seat(b, "A-1").click()
    expect(b.locator("#messages")).to_have_attribute("data-code", "seat_taken")
    expect(b.locator("#messages")).to_contain_text("just taken by someone else")
    shot("bob-seat-taken")

    # 3. Alice confirms: Bob sees the seat sold.
    first_hold = a.locator("#holds .hold").first
    first_hold.locator("button.confirm").click()
    expect(first_hold).to_have_attribute("data-status", "confirmed")
    expect(seat(a, "A-1")).to_have_attribute("data-status", "sold")
    expect(seat(b, "A-1")).to_have_attribute("data-status", "sold", timeout=1_000)
    expect(b.locator('#counts tr[data-section="hall"] td.sold')).to_have_text("1")
    shot("alice-confirms")

    # 4. By keyboard: Alice moves from and holds it with Enter; Bob holds B-3.
    seat(a, "A-1").focus()
    a.keyboard.press("ArrowRight")
    expect(seat(a, "A-2")).to_be_focused()
    a.keyboard.press("Enter")
    expect(seat(a, "A-2")).to_have_attribute("data-status", "mine")
    expect(seat(b, "A-2")).to_have_attribute("data-status", "held", timeout=1_000)
    seat(b, "B-3").click()
    expect(seat(b, "B-3")).to_have_attribute("data-status", "mine")
    expect(seat(a, "B-3")).to_have_attribute("data-status", "held", timeout=1_000)
    second_hold = a.locator("#holds .hold").first
    expect(second_hold.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    a.screenshot(path=os.path.join(args.out, "seatmap.png"), full_page=True)
    shot("keyboard-hold")

    # 5. Alice's countdown reaches "expired" on her clock (moved past the TTL at once)...
    a.clock.fast_forward((args.ttl + 1) * 1000)
    expect(second_hold).to_have_attribute("data-status", "expired")
    expect(second_hold.locator(".state")).to_have_text("expired")
    expect(a.locator("#messages")).to_have_attribute("data-code", "hold_expired")
    shot("alice-countdown-expired")
    # ... and once the hold really expired on the server, Bob sees the seat free again.
    expect(seat(b, "A-2")).to_have_attribute("data-status", "free", timeout=(args.ttl + 5) * 1000)
    expect(seat(b, "A-2")).to_have_attribute("aria-label", "Row A seat 2, free")
    shot("bob-sees-A-2-free-after-expiry")

    # 6. "Best 2 together": the server picks two adjacent seats; Bob's page shows them as his
    # and Alice's as held.
    def mine(page):
        return page.eval_on_selector_all(
            'button.seat[data-status="mine"]', "els => els.map(e => e.dataset.seat)")

    before_best = set(mine(b))
    b.locator("#best-qty").fill("2")
    expect(b.locator("#best")).to_have_text("Best 2 together")
    b.locator("#best").click()
    expect(b.locator("#messages")).to_have_attribute("data-code", "held")
    expect(b.locator('button.seat[data-status="mine"]')).to_have_count(len(before_best) + 2)
    picked = sorted(set(mine(b)) - before_best)
    assert len(picked) == 2, f"best 2 together gave {picked}"
    (row1, n1), (row2, n2) = (p.rsplit("-", 1) for p in picked)
    assert row1 == row2 and abs(int(n1) - int(n2)) == 1, f"not adjacent: {picked}"
    for seat_id in picked:
        expect(seat(b, seat_id)).to_have_attribute("aria-label", re.compile(r"held by you$"))
        expect(seat(a, seat_id)).to_have_attribute("data-status", "held", timeout=1_000)
    shot("bob-best-2-together")

    # 7. A general-admission quantity: Bob holds 2, Alice's counts follow.
    available = a.locator('#counts tr[data-section="ga"] td.available')
    before = int(available.inner_text())
    b.locator("#ga-qty").fill("2")
    b.locator("#ga-hold").click()
    expect(b.locator("#messages")).to_have_attribute("data-code", "held")
    expect(available).to_have_text(str(before - 2), timeout=1_000)
    shot("bob-holds-2-ga")

    # 8. The list at / links to the event's page.
    b.goto(f"{args.base}/")
    link = b.locator(f'a[href^="/events/{args.event}"]')
    expect(link).to_be_visible()
    link.click()
    expect(b.locator("#connection")).to_have_attribute("data-state", "live")
    shot("list-and-back")
    print(f"browser test passed; screenshots in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"seatmap_test.py: exit {code} after {time.monotonic() - started:.1f} s", file=sys.stderr)
    sys.exit(code)
