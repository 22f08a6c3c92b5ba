"""Drives the dashboard in headless chromium (selenium) for test_dashboard.sh
and bench/dashboard.sh. Exits 0 when every check holds, else prints one line
naming the first that did not and exits 1. Every wait is bounded.

  test mode:  --url U --pilot P --state-dir S --out DIR --down-after N
              --admin-token-file F --stop NAME NAME=PID...
  sign-in:    --url U --out DIR --sign-in TOKEN_FILE --expect-host HOST
  bench:      --url U --bench-fleet N | --bench-host HOST [--runs 5]
"""
import argparse
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


class Failed(Exception):
    pass


def browser(width=1280, height=800):
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def wait(what, seconds, check, step=0.1):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {seconds}s waiting for {what}")
        time.sleep(step)


def api(url, path, token=None):
    request = urllib.request.Request(url + path, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", "Bearer " + token)
    context = ssl._create_unverified_context() if url.startswith("https") else None
    with urllib.request.urlopen(request, timeout=10, context=context) as answer:
        return json.load(answer)


class Console:
    """The browser's console errors, page by page."""

    def __init__(self, driver):
        self.driver = driver

    def check(self, page, allow=()):
        errors = [entry["message"] for entry in self.driver.get_log("browser")
                  if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allow)]
        if errors:
            raise Failed(f"console errors on the {page} page: {errors[:3]}")


def shots(driver, out, name):
    """Desktop 1280x800 and phone 390x844 screenshots of the page as it is."""
    driver.set_window_size(1280, 800)
    time.sleep(0.3)
    driver.save_screenshot(os.path.join(out, f"{name}-desktop.png"))
    driver.set_window_size(390, 844)
    time.sleep(0.5)
    driver.save_screenshot(os.path.join(out, f"{name}-phone.png"))
    wide = driver.execute_script("return document.documentElement.scrollWidth")
    if wide > 392:
        raise Failed(f"the {name} page is {wide}px wide on a 390px phone (scrolls sideways)")
    driver.set_window_size(1280, 800)
    time.sleep(0.3)


def rows(driver):
    """The visible rows, host → state, read in one go (rows are replaced as they change)."""
    return driver.execute_script("""
        const out = {};
        for (const row of document.querySelectorAll('tr[data-host]')) {
            if (row.getClientRects().length) out[row.dataset.host] = row.dataset.state;
        }
        return out;""")


def mark(driver, name):
    return driver.execute_script(
        "const m = performance.getEntriesByName(arguments[0]); return m.length ? m[0].startTime : null;", name)


def chart_series(driver, group, metric):
    """The datasets of one chart, by role, for the series of `metric`."""
    return driver.execute_script("""
        const canvas = document.querySelector('canvas[data-chart="' + arguments[0] + '"]');
        if (!canvas) return null;
        const chart = Chart.getChart(canvas);
        if (!chart) return null;
        return chart.data.datasets.filter(d => d.pilotMetric === arguments[1])
            .map(d => ({role: d.pilotRole, labels: d.pilotLabels, data: d.data.map(p => [p.x, p.y])}));
    """, group, metric)


def pilot_query(pilot, state_dir, metric, host, start, end, step=None):
    command = [pilot, "query", metric, "--host", host, "--from", str(start), "--to", str(end), "--json", "--state-dir", state_dir]
    if step:
        command += ["--step", f"{step}s"]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if answer.returncode != 0:
        raise Failed(f"pilot query {metric}: {answer.stderr.strip()}")
    return json.loads(answer.stdout)


def compare_chart(driver, args, host, range_name, step, at_least=1):
    now = int(time.time())
    end = now - 2 * max(1, args.down_after // 3)  # two intervals back: every sample up to here has arrived
    # A hash change keeps the document (and its marks): clear them first.
    driver.execute_script("performance.clearMarks()")
    driver.get(f"{args.url}/#/host/{host}?range={range_name}&to={end}")
    wait(f"the {host} page drawn ({range_name})", 20, lambda: mark(driver, "pilot-host-drawn") is not None)
    view = driver.execute_script("return window.pilotView")
    if not view or view.get("host") != host or view.get("to") != end or view.get("step") != step:
        raise Failed(f"window.pilotView is {view}, not host {host} to {end} step {step}")
    start = view["from"]
    series = chart_series(driver, "cpu", "cpu_pct")
    if not series:
        raise Failed(f"no cpu_pct dataset on the CPU chart of {host} ({range_name})")
    average = [s for s in series if s["role"] == "avg"]
    expected = pilot_query(args.pilot, args.state_dir, "cpu_pct", host, start, end, step)
    if len(average) != 1 or len(expected) != 1:
        raise Failed(f"{len(average)} cpu_pct lines drawn, pilot query has {len(expected)} series")
    want = [[point[0], point[1]] for point in expected[0]["points"]]
    got = average[0]["data"]
    if len(want) < at_least:
        raise Failed(f"pilot query has {len(want)} cpu_pct points for {host} in {start}..{end}, fewer than {at_least}")
    if got != want:
        raise Failed(f"the CPU chart of {host} ({range_name}) differs from pilot query: {len(got)} points drawn, "
                     f"{len(want)} queried; first difference at {next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}")
    if step:
        roles = sorted(s["role"] for s in series)
        if roles != ["avg", "max", "min"]:
            raise Failed(f"the {range_name} CPU chart has datasets {roles}, not the avg line with its min/max band")
    return len(want)


def test(args):
    pids = dict(item.split("=", 1) for item in args.agents)
    token = open(args.admin_token_file).read().strip()
    driver = browser()
    console = Console(driver)
    try:
        driver.get(args.url + "/")
        driver.execute_script("window.__sameDocument = 'yes'")
        hosts = {h["host"] for h in api(args.url, "/api/hosts")}
        v1 = {h["host"]: h for h in api(args.url, "/api/v1/hosts")["hosts"]}
        if set(v1) != hosts:
            raise Failed(f"/api/v1/hosts has {sorted(v1)}, /api/hosts {sorted(hosts)}")
        wait("a row per host of /api/hosts", 15, lambda: set(rows(driver)) == hosts)
        if mark(driver, "pilot-fleet-drawn") is None:
            raise Failed("the fleet page set no pilot-fleet-drawn mark")
        counts = driver.find_element(By.ID, "count-hosts").text
        if str(len(hosts)) not in counts:
            raise Failed(f"the count of hosts reads '{counts}', the fleet has {len(hosts)}")
        shots(driver, args.out, "fleet")
        console.check("fleet")

        # A tag filter narrows the rows to the hosts with that tag.
        production = {name for name, h in v1.items() if "production" in h["tags"]}
        if len(production) < 2 or production == hosts:
            raise Failed(f"the fleet has no useful production subset: {sorted(production)}")
        box = driver.find_element(By.ID, "filter")
        box.clear()
        box.send_keys("tag:production")
        wait("the rows narrowed to tag:production", 5, lambda: set(rows(driver)) == production)
        shots(driver, args.out, "fleet-filtered")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)
        wait("every row back without a filter", 5, lambda: set(rows(driver)) == hosts)

        # An agent stopped: down within the host-down time (and the poll), with no reload.
        stopped = args.stop
        os.kill(int(pids[stopped]), signal.SIGTERM)
        started = time.monotonic()
        wait(f"{stopped} shown down", args.down_after + 15, lambda: rows(driver).get(stopped) in ("silent", "offline"), step=0.2)
        took = time.monotonic() - started
        if driver.execute_script("return window.__sameDocument") != "yes":
            raise Failed("the page reloaded to show the change")
        if took > args.down_after + 6:  # the host-down time, the aggregator's 1 s tick and a 2 s poll, with room
            raise Failed(f"{stopped} was shown down {took:.1f}s after it stopped (host-down time {args.down_after}s)")
        shots(driver, args.out, "fleet-down")
        console.check("fleet (live)")

        # Host page: the CPU chart holds exactly what pilot query gives.
        host = sorted(production)[0]
        # Enough history for the comparison to mean something: 8 collections.
        first = min(p[0] for p in pilot_query(args.pilot, args.state_dir, "cpu_pct", host, 0, int(time.time()))[0]["points"]) // 1000
        wait("8 collections of history", 30, lambda: time.time() - first > 10 * max(1, args.down_after // 3), step=0.5)
        raw_points = compare_chart(driver, args, host, "1h", 0, at_least=5)
        shots(driver, args.out, "host")
        console.check("host (1h)")
        stepped = compare_chart(driver, args, host, "6h", 60)
        console.check("host (6h)")

        # Alerts page, and a silence set from it with the admin token.
        driver.get(args.url + "/#/alerts")
        wait("the silence form", 15, lambda: driver.find_elements(By.ID, "silence-form"))
        driver.execute_script("sessionStorage.setItem('pilot-admin-token', arguments[0])", token)
        driver.find_element(By.ID, "sf-matchers").send_keys("host=web-02")
        driver.find_element(By.ID, "sf-comment").send_keys("browser test")
        driver.find_element(By.CSS_SELECTOR, "#silence-form button[type=submit]").click()
        wait("the silence listed on the page", 10, lambda: "host=web-02" in driver.find_element(By.ID, "silences").text)
        shots(driver, args.out, "alerts")
        console.check("alerts")
        print(f"fleet of {len(hosts)}, filter, {stopped} down after {took:.1f}s, CPU chart = pilot query "
              f"({raw_points} raw points, {stepped} 60 s steps), silence set; screenshots in {args.out}")
    finally:
        driver.quit()


def sign_in(args):
    token = open(args.sign_in).read().strip()
    driver = browser()
    console = Console(driver)
    try:
        driver.get(args.url + "/")
        source = driver.page_source
        if args.expect_host in source or "token" not in source.lower():
            raise Failed("without the token the page is not the sign-in form, or names the host")
        shots(driver, args.out, "sign-in")
        # The refused page itself is a 401: that one console line is the refusal, not a fault.
        console.check("sign-in", allow=("status of 401",))
        box = driver.find_element(By.ID, "token")
        box.send_keys(token)
        box.submit()
        wait(f"{args.expect_host} listed after signing in", 20, lambda: args.expect_host in rows(driver))
        shots(driver, args.out, "fleet-tls")
        console.check("fleet over TLS")
        print(f"sign-in: refused without the token, {args.expect_host} shown with it")
    finally:
        driver.quit()


def bench(args):
    """Median of `runs` loads: navigation start to the page's mark."""
    driver = browser()
    try:
        results = []
        for _ in range(args.runs + 1):  # the first warms the browser's caches, as a returning user's would be
            if args.bench_fleet:
                driver.get(args.url + "/?bench=" + str(time.monotonic()) + "#/")
                wait("the fleet drawn", 60, lambda: mark(driver, "pilot-fleet-drawn") is not None)
                count = len(driver.find_elements(By.CSS_SELECTOR, "tr[data-host]"))
                if count != args.bench_fleet:
                    raise Failed(f"{count} rows drawn, not {args.bench_fleet}")
                results.append(mark(driver, "pilot-fleet-drawn"))
            else:
                driver.get(args.url + "/?bench=" + str(time.monotonic()) + f"#/host/{args.bench_host}?range=30d")
                wait("the host page drawn", 120, lambda: mark(driver, "pilot-host-drawn") is not None)
                charts = driver.execute_script("return document.querySelectorAll('canvas[data-chart]').length")
                results.append(mark(driver, "pilot-host-drawn"))
        results = results[1:]
        what = "fleet" if args.bench_fleet else "host"
        extra = f"{args.bench_fleet} rows" if args.bench_fleet else f"{charts} charts, 30 days"
        print(json.dumps({"page": what, "median_ms": round(statistics.median(results), 1),
                          "runs_ms": [round(r, 1) for r in results], "what": extra}))
    finally:
        driver.quit()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", default="/tmp")
    parser.add_argument("--pilot")
    parser.add_argument("--state-dir")
    parser.add_argument("--down-after", type=int, default=6)
    parser.add_argument("--admin-token-file")
    parser.add_argument("--stop")
    parser.add_argument("--sign-in")
    parser.add_argument("--expect-host")
    parser.add_argument("--bench-fleet", type=int)
    parser.add_argument("--bench-host")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("agents", nargs="*")
    args = parser.parse_args()
    try:
        if args.sign_in:
            sign_in(args)
        elif args.bench_fleet or args.bench_host:
            bench(args)
        else:
            test(args)
    except Failed as failure:
        print(f"dashboard_browser: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
