"""Simulated respondents for the load and fault benchmarks: asyncio, one aiohttp session (a browser: its
own cookies and keep-alive connection) per concurrent respondent.

A respondent takes the next invitation code, opens the form, submits every answer, and counts the
submission as acknowledged only on the thank-you page. When a request fails (connection dropped, 503), it
waits (``Retry-After``) and sends the same request again, the same submission id included, as a person
pressing the button again would; every failed attempt is counted by kind.
"""
from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

FORM = re.compile(r'<form\b[^>]*class="questionnaire"[^>]*>.*?</form>', re.S)
ACTION = re.compile(r'\baction="([^"]+)"')
HIDDEN = re.compile(r'<input\b[^>]*type="hidden"[^>]*>')
ATTR = re.compile(r'\b(name|value)="([^"]*)"')
THANKS = "Cảm ơn"


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # seconds per acknowledged response
    acknowledged: list[str] = field(default_factory=list)  # codes whose submission was acknowledged
    acked_at: list[float] = field(default_factory=list)  # when, in seconds from the start
    failures: Counter = field(default_factory=Counter)  # failed attempts by kind
    first_failure: dict[str, str] = field(default_factory=dict)
    retry_after: Counter = field(default_factory=Counter)  # Retry-After values seen on 503s
    partial: int = 0  # 200 answers whose page was cut short

    def fail(self, kind: str, detail: str) -> None:
        self.failures[kind] += 1
        self.first_failure.setdefault(kind, detail[:300])

    def longest_gap(self, after: float) -> tuple[float, float]:
        """(start, length) of the longest time without an acknowledgement after ``after`` seconds: how long
        the service took to recover from a fault injected then."""
        times = sorted(t for t in self.acked_at if t >= after)
        gaps = [(after, times[0] - after)] if times else [(after, float("inf"))]
        gaps += [(a, b - a) for a, b in zip(times, times[1:])]
        return max(gaps, key=lambda g: g[1])

    def summary(self, seconds: float) -> dict:
        lat = sorted(self.latencies)
        pick = (lambda q: 1000 * lat[min(len(lat) - 1, int(q * (len(lat) - 1)))]) if lat else (lambda q: float("nan"))
        return {"acknowledged": len(self.acknowledged), "per_second": len(lat) / seconds,
                "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"), "p95_ms": pick(0.95),
                "p99_ms": pick(0.99), "max_ms": pick(1.0), "failures": dict(self.failures),
                "first_failure": self.first_failure, "partial": self.partial,
                "retry_after": dict(self.retry_after), "seconds": seconds}


class Retry(Exception):
    """This attempt failed in a way a person would retry."""


async def _send(http: aiohttp.ClientSession, stats: Stats, method: str, url: str, data, whole_page: bool
                ) -> tuple[str, str]:
    """One attempt: (final URL, page); raises Retry after counting what went wrong. ``whole_page``: a
    200 must carry a complete HTML page (the baseline answers bare fragments)."""
    try:
        async with http.request(method, url, data=data) as resp:
            page = await resp.text()
            if resp.status == 503:
                stats.retry_after[resp.headers.get("Retry-After", "missing")] += 1
                stats.fail("503", page[:200])
                raise Retry(float(resp.headers.get("Retry-After") or 1))
            if resp.status != 200:
                stats.fail(str(resp.status), f"{method} {url}: {page[:300]}")
                raise Retry(1.0)
            if whole_page and not page.rstrip().endswith("</html>"):
                stats.partial += 1
                stats.fail("partial", f"{method} {url}: {page[-200:]}")
                raise Retry(0.1)
            return str(resp.url), page
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        stats.fail("connection", f"{method} {url}: {exc!r}")
        raise Retry(0.2) from exc


async def _until_done(http, stats, method, url, data=None, *, whole_page: bool, deadline: float,
                      max_wait: float):
    while True:
        try:
            return await _send(http, stats, method, url, data, whole_page)
        except Retry as retry:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(min(float(retry.args[0]), max_wait))


async def respond(http: aiohttp.ClientSession, base: str, code: str, answers: dict, stats: Stats, *,
                  product: bool, deadline: float, max_wait: float) -> None:
    """One respondent's complete response: open the form behind the code (following the portal's
    redirects), then post every answer with the form's hidden fields to the form's action (the same
    submission again and again until acknowledged or past ``deadline``)."""
    wait = {"whole_page": product, "deadline": deadline, "max_wait": max_wait}
    url, page = await _until_done(http, stats, "GET", f"{base}/c/{code}", **wait)
    if product:
        form = FORM.search(page)
        if form is None:
            stats.fail("no-form", page[:300])
            raise Retry(0)
        fields = {a["name"]: a.get("value", "") for a in (dict(ATTR.findall(tag)) for tag in
                                                           HIDDEN.findall(form.group(0))) if "name" in a}
        action = ACTION.search(form.group(0))
        post_url = base + action.group(1).replace("&amp;", "&") if action else url
    else:
        fields, post_url = {"submission_id": "0"}, url
    _, page = await _until_done(http, stats, "POST", post_url, {**fields, **answers, "action": "submit"}, **wait)
    if product and THANKS not in page:
        stats.fail("no-thanks", page[:300])
        raise Retry(0)


async def run(base: str, codes: list[tuple[str, str]], answers: dict[str, dict], *, clients: int,
              seconds: float, product: bool = True, max_wait: float = 2.0, give_up_after: float = 60.0,
              during=None) -> tuple[Stats, float]:
    """``clients`` respondents answer one code after another for ``seconds``; a submission started before
    the end is finished (up to ``give_up_after`` more seconds). ``during``: a coroutine run alongside
    (the fault to inject). Returns the counts and the wall time."""
    stats, queue = Stats(), iter(codes)
    start = time.monotonic()
    stop_at = start + seconds

    async def respondent():
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=1)) as http:
            while time.monotonic() < stop_at:
                item = next(queue, None)
                if item is None:
                    stats.fail("codes-exhausted", "issue more codes")
                    return
                code, form = item
                http.cookie_jar.clear()  # a new respondent, a new browser
                began = time.monotonic()
                try:
                    await respond(http, base, code, answers[form], stats, product=product,
                                  deadline=stop_at + give_up_after, max_wait=max_wait)
                except Retry:
                    continue
                stats.latencies.append(time.monotonic() - began)
                stats.acknowledged.append(code)
                stats.acked_at.append(time.monotonic() - start)

    tasks = [asyncio.create_task(respondent()) for _ in range(clients)]
    if during is not None:
        tasks.append(asyncio.create_task(during(start)))
    await asyncio.gather(*tasks)
    return stats, time.monotonic() - start
